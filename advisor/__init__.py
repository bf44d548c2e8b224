"""The advisor: questionnaire, rules (data), decision engine and cost estimates; `adapt advise` (advise_cmd).

It stands on base alone (plan schema, strategy registry, results and the judge). Nothing imported at package
level may pull in torch: `adapt advise` stays light.
"""
