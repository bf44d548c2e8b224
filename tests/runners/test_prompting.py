"""One prompt builder: demos as turns, passages numbered, and training pairs that line up with scoring prompts."""
from __future__ import annotations

from base.plan import TaskSpec
from base.data import Example
from runners.prompting import build_messages, render_prompt, training_pair

TASK = TaskSpec(name="s", type="classification", eval="e.jsonl")
QA = TaskSpec(name="q", type="qa", eval="e.jsonl", instruction="Reply tersely.")


def test_demos_become_solved_turns_and_labels_fill_the_instruction():
    demo = Example(id="d", prompt="great film", target="positive")
    messages = build_messages(TASK, Example(id="x", prompt="dull", target="negative"), ["negative", "positive"], demos=[demo])
    assert [m["role"] for m in messages] == ["user", "assistant", "user"]
    assert messages[1]["content"] == "positive"
    assert messages[-1]["content"].startswith("Text: dull")
    assert "one of: negative, positive" in messages[-1]["content"]


def test_passages_are_numbered_before_the_question_and_custom_instruction_used():
    messages = build_messages(QA, Example(id="x", prompt="why?", target="because"), None, passages=["p one", "p two"])
    content = messages[-1]["content"]
    assert content.index("[1] p one") < content.index("[2] p two") < content.index("Question: why?")
    assert content.endswith("Reply tersely.")


def test_training_pair_continues_the_scoring_prompt(tiny_tokenizer):
    example = Example(id="x", prompt="dull", target="negative")
    prompt, completion = training_pair(tiny_tokenizer, TASK, example, ["negative", "positive"])
    assert prompt == render_prompt(tiny_tokenizer, build_messages(TASK, example, ["negative", "positive"]))
    assert prompt.endswith("<|im_start|>assistant\n")
    assert completion.startswith("negative<|im_end|>")


def test_plain_fallback_without_chat_template(tiny_tokenizer):
    import copy

    plain = copy.deepcopy(tiny_tokenizer)
    plain.chat_template = None
    example = Example(id="x", prompt="dull", target="negative")
    prompt, completion = training_pair(plain, TASK, example, ["negative", "positive"])
    assert prompt.endswith("Output:") and "Input: Text: dull" in prompt
    assert completion == " negative<|im_end|>"
