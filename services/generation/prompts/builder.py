"""Turn a grounded request into chat messages for a backend, per strategy."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from services.generation.prompts import drpo, opo
from services.generation.prompts.fencing import DEFAULT, Neutralizer
from shared.events import GroundedRequest, RetrievedRule, Role, is_opo
from shared.language import language_of
from shared.prompt_sets import PromptSet
from shared.strategies import Rendering, RulesFrom, spec_of
from shared.tokens import HeuristicTokenCounter

MCQ_SYSTEM = {
    "zh": "你是一个中文人工智能助手，你需要做一个单项选择题，从{n}个选项中选出一个正确答案。",
    "en": "You are a helpful AI assistant. Answer the single-choice question by choosing the one "
    "correct option out of {n}.",
}
"""OPO's exam system prompt (zh verbatim) when the request scores option letters."""


@dataclass(frozen=True, slots=True)
class ChatPrompt:
    messages: tuple[dict[str, str], ...]
    """OpenAI-style ``{"role", "content"}`` dicts, ready for a chat template."""
    continue_final: bool = False
    """The last message is an assistant prefill to continue (not a new turn)."""
    stop: tuple[str, ...] = ()
    cited: tuple[RetrievedRule, ...] = field(default=())
    """The rules placed in the prompt: what the answer may cite."""
    finish: Callable[[str], str] = str
    """Turns the model's text into the answer (DRPO: its ``<START>``/``<END>`` removed)."""
    joined: bool = False
    """Put to the model as the messages' texts joined by newlines, with no chat template
    (``opo-exact``: how OPO's code prompts open models)."""


def build_prompt(
    grounded: GroundedRequest,
    *,
    drpo_fallback: PromptSet | None = None,
    drpo_k: int = 2,
    fence_rules: bool = True,
    neutralizer: Neutralizer = DEFAULT,
    count_tokens: Callable[[str], int] | None = None,
) -> ChatPrompt:
    """``drpo_fallback``: the DRPO set used when retrieval attached none (its first
    ``drpo_k`` examples; retrieval picks them by similarity instead). ``fence_rules``: quote the
    rules as reference material (``fencing.py``); False gives OPO's prompt verbatim.
    Every text from the request, the rules and the prompt set is untrusted: ``neutralizer``
    (the deployed model's markers) removes chat-template control markers from each.
    ``count_tokens``: the deployed model's tokenizer, for OPO's budget (``protocol="opo"``)."""
    request = grounded.request
    neutralize = neutralizer
    question = neutralize(request.question)
    language = language_of(question)
    spec = spec_of(request.strategy)
    rules = tuple(grounded.rules) if spec.uses_rules else ()
    opo_protocol = is_opo(request.protocol)
    if opo_protocol and spec.rules is not RulesFrom.REQUEST:
        # OPO's budget limits what retrieval found (``limit_length`` over the retrieved
        # texts); the oracle's articles are the question's own principle and stay whole
        # (budgeted, 18 A-Law and 94 professional-morality prompts lost articles, two all).
        count = count_tokens or HeuristicTokenCounter().count
        rules = opo.opo_budget(rules, request.scope.token_budget, count)

    history = [{"role": m.role.value, "content": neutralize(m.content)} for m in request.messages]
    # The question is the last user message; what follows it (an assistant prefill) stays.
    last_user = max(i for i, m in enumerate(request.messages) if m.role is Role.USER)
    system: str | None = None
    stop: tuple[str, ...] = ()
    drpo_system, examples = grounded.system_prompt, grounded.examples
    if drpo_system is None and drpo_fallback is not None:
        drpo_system, examples = drpo_fallback.system, drpo_fallback.examples[:drpo_k]
    if spec.uses_prompt_set and drpo_system is not None:
        # Prompt sets are tenant data too: their texts are neutralized like rules.
        shots = [
            e.model_copy(update={"query": neutralize(e.query), "answer": neutralize(e.answer)})
            for e in examples
        ]
        system = drpo.render_system(neutralize(drpo_system), shots)
        history[last_user] = {"role": "user", "content": drpo.render_user_turn(question)}
        stop = (drpo.END,)
    elif spec.rendering is not Rendering.RAW:
        template = opo.template_for(language)
        if opo_protocol:
            # opo-exact: the oracle's articles with the principle's own ":" (as OPO's data).
            exact_oracle = request.protocol == "opo-exact" and spec.rules is RulesFrom.REQUEST
            colon = ":" if exact_oracle else "："
            content = opo.render_opo_user_turn(question, rules, template, neutralize, colon)
        else:
            content = opo.render_user_turn(
                question, rules, template, fenced=fence_rules, neutralizer=neutralize
            )
        history[last_user] = {"role": "user", "content": content}
        if request.params.option_letters:
            system = MCQ_SYSTEM[language].format(n=len(request.params.option_letters))
    if system is not None:
        _place_system(history, system, aligned=spec.uses_prompt_set)
    continue_final = request.prefill is not None
    if request.prefill is not None:
        history.append({"role": "assistant", "content": neutralize(request.prefill)})
    return ChatPrompt(
        messages=tuple(history),
        continue_final=continue_final,
        stop=tuple(dict.fromkeys((*request.params.stop, *stop))),
        cited=rules,
        finish=drpo.strip_markers if spec.uses_prompt_set else str,
        joined=request.protocol == "opo-exact",
    )


def _place_system(history: list[dict[str, str]], system: str, *, aligned: bool) -> None:
    """The strategy's system prompt. DRPO's is the alignment itself: it always leads, and a
    client's own system message follows it in the same turn (never replaces it). The exam
    prompts' (MCQ) gives way to a system message the exam protocol brings (OPO's own)."""
    has_system = history and history[0]["role"] == "system"
    if aligned and has_system:
        history[0] = {"role": "system", "content": f"{system}\n\n{history[0]['content']}"}
    elif aligned or not any(m["role"] == "system" for m in history):
        history.insert(0, {"role": "system", "content": system})
