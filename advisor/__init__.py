"""adaptlab's front end: the CLI, the plan format and the advisor (decision engine, questionnaire, estimates).

Nothing imported at package level may pull in torch: `adapt --help`, `advise` and `report` stay light.
"""
