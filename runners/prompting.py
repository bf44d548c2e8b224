"""One prompt builder for every strategy, so a trained adapter sees at train time exactly the prompt it is scored with.

Demonstrations (few-shot) become earlier chat turns; retrieved passages go into the user message.
"""
from __future__ import annotations

from typing import Any, Sequence

from base.plan import TaskSpec
from base.data import Example

DEFAULT_INSTRUCTIONS = {
    "classification": "Classify the text. Answer with exactly one of: {labels}.",
    "qa": "Answer the question with a few words only.",
    "multiple_choice": "Answer the question.",
}


def instruction(task: TaskSpec, labels: Sequence[str] | None) -> str:
    template = task.instruction or DEFAULT_INSTRUCTIONS[task.type]
    return template.replace("{labels}", ", ".join(labels or []))


def user_message(task: TaskSpec, example: Example, labels: Sequence[str] | None, passages: Sequence[str] = ()) -> str:
    """One user turn: retrieved context (if any), the input in the task's framing, then the instruction.

    The instruction comes last, in the user turn: small chat models follow it there far more often than
    from a system turn (SmolLM2-135M on SST-2: 1 of 40 answers off the label set, vs 30 of 40).
    """
    parts = []
    if passages:
        numbered = "\n".join(f"[{i}] {text.strip()}" for i, text in enumerate(passages, 1))
        parts.append(f"Use these passages if they help:\n{numbered}")
    parts.append(f"{'Text' if task.type == 'classification' else 'Question'}: {example.prompt}")
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


def _plain(messages: Sequence[dict[str, str]]) -> str:
    """Fallback for tokenizers without a chat template (base models): Input/Output blocks."""
    prefixes = {"user": "Input: ", "assistant": "Output: "}
    blocks = [prefixes.get(m["role"], "") + m["content"] for m in messages]
    return "\n\n".join(blocks) + "\n\nOutput:"


def render_prompt(tokenizer: Any, messages: Sequence[dict[str, str]]) -> str:
    """Messages → the text the model continues: its chat template with a generation prompt when it has one."""
    if getattr(tokenizer, "chat_template", None):
        return tokenizer.apply_chat_template(list(messages), tokenize=False, add_generation_prompt=True)
    return _plain(messages)


def completion_text(tokenizer: Any, messages: Sequence[dict[str, str]], target: str) -> str:
    """What the model should produce after `render_prompt(messages)`: the target and its end-of-turn marker."""
    prompt = render_prompt(tokenizer, messages)
    if getattr(tokenizer, "chat_template", None):
        full = tokenizer.apply_chat_template(
            [*messages, {"role": "assistant", "content": target}], tokenize=False, add_generation_prompt=False
        )
        if full.startswith(prompt):
            return full[len(prompt):]
    return f" {target}{tokenizer.eos_token or chr(10)}"


def training_pair(tokenizer: Any, task: TaskSpec, example: Example, labels: Sequence[str] | None) -> tuple[str, str]:
    """(prompt, completion) for supervised training: loss goes on the completion only."""
    messages = build_messages(task, example, labels)
    return render_prompt(tokenizer, messages), completion_text(tokenizer, messages, example.target)
