"""One prompt builder for every strategy, so a trained adapter sees at train time exactly the prompt it is scored with.

Two formats, a per-task choice recorded in every run (`TaskSpec.prompt_format`):
- `chat`: the model's chat template. Demonstrations become earlier solved turns; retrieved passages and the
  instruction go into the user message, the instruction last (small chat models follow it there far more often
  than from a system turn: SmolLM2-135M on SST-2, 1 of 40 answers off the label set vs 30 of 40).
- `plain`: completion-style blocks, `Text: ...\\nLabel: positive`, demonstrations as earlier blocks, the query's
  answer left open (`Label:`) for the model to continue. The instruction is written only when the task gives one:
  the default one is chat phrasing, and on SST-2 train items it lowered label-ranking accuracy (bench/prompt_formats.py).
A tokenizer without a chat template always gets `plain`.
"""
from __future__ import annotations

from dataclasses import replace
from typing import Any, Sequence

from base.plan import TaskSpec
from base.data import Example

DEFAULT_INSTRUCTIONS = {
    "classification": "Classify the text. Answer with exactly one of: {labels}.",
    "qa": "Answer the question with a few words only.",
    "multiple_choice": "Answer the question.",
}
CONTENT_FREE = "N/A"  # the content-free input of contextual calibration (Zhao et al. 2021)


def instruction(task: TaskSpec, labels: Sequence[str] | None) -> str:
    template = task.instruction or DEFAULT_INSTRUCTIONS[task.type]
    return template.replace("{labels}", ", ".join(labels or []))


def uses_chat(task: TaskSpec, tokenizer: Any) -> bool:
    return task.prompt_format == "chat" and bool(getattr(tokenizer, "chat_template", None))


def _passages_block(passages: Sequence[str]) -> str:
    numbered = "\n".join(f"[{i}] {text.strip()}" for i, text in enumerate(passages, 1))
    return f"Use these passages if they help:\n{numbered}"


def user_message(task: TaskSpec, example: Example, labels: Sequence[str] | None, passages: Sequence[str] = ()) -> str:
    """One chat user turn: retrieved context (if any), the input under the task's name for it, then the instruction."""
    parts = [_passages_block(passages)] if passages else []
    parts.append(f"{task.input_name}: {example.prompt}")
    parts.append(instruction(task, labels))
    return "\n\n".join(parts)


def build_messages(
    task: TaskSpec,
    example: Example,
    labels: Sequence[str] | None,
    demos: Sequence[Example] = (),
    passages: Sequence[str] = (),
) -> list[dict[str, str]]:
    """Chat messages: demonstrations as solved turns, earlier chat history, then the query."""
    messages = []
    for demo in demos:
        messages.append({"role": "user", "content": user_message(task, demo, labels)})
        messages.append({"role": "assistant", "content": demo.target})
    messages.extend(example.history or [])
    messages.append({"role": "user", "content": user_message(task, example, labels, passages)})
    return messages


def render_prompt(tokenizer: Any, messages: Sequence[dict[str, str]]) -> str:
    """Chat messages → the text the model continues: its chat template with a generation prompt."""
    return tokenizer.apply_chat_template(list(messages), tokenize=False, add_generation_prompt=True)


def plain_prompt(task: TaskSpec, example: Example, demos: Sequence[Example] = (), passages: Sequence[str] = ()) -> str:
    """Completion-style blocks ending in `<answer_name>:`; earlier chat turns become blocks of their own."""
    blocks = [task.instruction] if task.instruction else []
    if passages:
        blocks.append(_passages_block(passages))
    blocks.extend(f"{task.input_name}: {demo.prompt}\n{task.answer_name}: {demo.target}" for demo in demos)
    for turn in example.history or []:
        blocks.append(f"{task.answer_name if turn['role'] == 'assistant' else task.input_name}: {turn['content']}")
    blocks.append(f"{task.input_name}: {example.prompt}\n{task.answer_name}:")
    return "\n\n".join(blocks)


def build_prompt(tokenizer: Any, task: TaskSpec, example: Example, labels: Sequence[str] | None,
                 demos: Sequence[Example] = (), passages: Sequence[str] = ()) -> str:
    """The text the model continues for `example`, in the task's prompt format."""
    if uses_chat(task, tokenizer):
        return render_prompt(tokenizer, build_messages(task, example, labels, demos, passages))
    return plain_prompt(task, example, demos, passages)


def content_free(example: Example) -> Example:
    """The same query with its input replaced by a content-free one: what calibration divides by."""
    return replace(example, prompt=CONTENT_FREE, history=None)


def answer_prefix(prompt: str) -> str:
    """What separates a prompt from its answer: a space after `Label:`, nothing after a chat generation prompt."""
    return "" if not prompt or prompt[-1].isspace() else " "


def training_pair(tokenizer: Any, task: TaskSpec, example: Example, labels: Sequence[str] | None) -> tuple[str, str]:
    """(prompt, completion) for supervised training: loss goes on the completion only.

    The completion is the answer as scoring reads it (`answer_prefix` + target) followed by the end marker the
    model should stop at: the chat template's end of turn, or the end-of-text token in the plain format.
    """
    prompt = build_prompt(tokenizer, task, example, labels)
    if uses_chat(task, tokenizer):
        messages = build_messages(task, example, labels)
        full = tokenizer.apply_chat_template([*messages, {"role": "assistant", "content": example.target}],
                                             tokenize=False, add_generation_prompt=False)
        if full.startswith(prompt):
            return prompt, full[len(prompt):]
    return prompt, f"{answer_prefix(prompt)}{example.target}{tokenizer.eos_token or chr(10)}"
