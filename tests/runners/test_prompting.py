"""One prompt builder: demos as turns, passages numbered, and training pairs that line up with scoring prompts."""
from __future__ import annotations

from base.data import Example
from base.plan import TaskSpec
from runners.prompting import build_messages, build_prompt, content_free, render_prompt, training_pair

TASK = TaskSpec(name="s", type="classification", eval="e.jsonl", prompt_format="chat")
PLAIN = TaskSpec(name="p", type="classification", eval="e.jsonl", prompt_format="plain", input_name="Review",
                 answer_name="Sentiment")
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
    assert prompt == build_prompt(tiny_tokenizer, TASK, example, ["negative", "positive"])
    assert prompt.endswith("<|im_start|>assistant\n")
    assert completion.startswith("negative<|im_end|>")


def test_plain_format_blocks_with_the_tasks_names(tiny_tokenizer):
    demo = Example(id="d", prompt="great film", target="positive")
    example = Example(id="x", prompt="dull", target="negative")
    prompt = build_prompt(tiny_tokenizer, PLAIN, example, ["negative", "positive"], demos=[demo])
    assert prompt == "Review: great film\nSentiment: positive\n\nReview: dull\nSentiment:"
    train_prompt, completion = training_pair(tiny_tokenizer, PLAIN, example, ["negative", "positive"])
    # the same text reaches training and scoring; the answer is what rank scoring reads after it
    assert train_prompt == build_prompt(tiny_tokenizer, PLAIN, example, ["negative", "positive"])
    assert completion == " negative<|im_end|>"


def test_plain_is_used_without_a_chat_template_and_defaults_follow_the_type(tiny_tokenizer):
    import copy

    no_template = copy.deepcopy(tiny_tokenizer)
    no_template.chat_template = None
    example = Example(id="x", prompt="dull", target="negative")
    prompt, completion = training_pair(no_template, TASK, example, ["negative", "positive"])
    assert prompt == "Text: dull\nLabel:" and completion == " negative<|im_end|>"
    defaults = TaskSpec(name="d", type="classification", eval="e.jsonl")
    assert (defaults.scoring, defaults.prompt_format) == ("rank", "plain")
    qa = TaskSpec(name="q", type="qa", eval="e.jsonl")
    assert (qa.scoring, qa.prompt_format, qa.input_name) == ("generate", "chat", "Question")


def test_content_free_twin_keeps_everything_but_the_input(tiny_tokenizer):
    demo = Example(id="d", prompt="great film", target="positive")
    example = Example(id="x", prompt="dull", target="negative")
    twin = build_prompt(tiny_tokenizer, PLAIN, content_free(example), None, demos=[demo])
    assert twin == "Review: great film\nSentiment: positive\n\nReview: N/A\nSentiment:"
