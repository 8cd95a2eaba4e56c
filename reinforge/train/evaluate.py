"""Validation: greedy mean reward and pass@k from k samples per prompt (RFT, ``reinforge eval``); sampled
reward and KL to the reference (PPO, DPO)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import torch

from reinforge.agents.episode import Episode, episode_metrics
from reinforge.graders.base import Grader, make_sample
from reinforge.models.chat import encode_row
from reinforge.models.generation import HFBackend, SamplingParams
from reinforge.train.agent import AgentRunner
from reinforge.train.logprobs import per_token_logps
from reinforge.train.losses import pass_at_k
from reinforge.train.progress import TrainProgress
from reinforge.train.rollout import collect_rollout, first_row_where, grade_episodes, grade_safely


def evaluate(
    backend,
    tokenizer,
    grader: Grader,
    rows: list[dict],
    max_tokens: int,
    k: int = 1,
    temperature: float = 1.0,
    top_p: float = 1.0,
    seed: int = 0,
    batch_size: int = 128,
    pass_threshold: float = 1.0,
    return_rows: bool = False,
    agent: AgentRunner | None = None,
    progress: bool = False,
):
    """Greedy ``reward_mean`` over ``rows``; with ``k > 1`` also ``pass@k`` and ``sample_reward_mean``.
    ``progress``: a bar over the rows (``reinforge eval``), with the reward so far, after each batch.
    With ``agent``, each sample is an episode graded whole, and the greedy episodes' ``agent/*`` figures
    are in the result; discarded episodes (or truncated ones, with ``on_truncated: discard``) score 0."""
    prompts = [] if agent else [encode_row(tokenizer, r) for r in rows]
    greedy_rewards, outputs, sampled = [], [], []
    episodes: list[Episode] = []  # the greedy ones, with an agent

    def sample(chunk_rows: list[dict], params: SamplingParams, first: int):  # (texts, grades), row-major
        if agent is not None:
            eps = agent.run(
                backend, tokenizer, chunk_rows, params.n, params, f"eval-{seed}-{first}-{params.n}"
            )
            episodes.extend(eps if params.n == 1 else [])
            return [e.final_text for e in eps], grade_episodes(agent, grader, chunk_rows, eps)[0]
        g = backend.generate(prompts[first : first + len(chunk_rows)], params)
        n = params.n
        return g.texts, grade_safely(
            grader, [(chunk_rows[j // n], make_sample(t)) for j, t in enumerate(g.texts)]
        )

    with TrainProgress(len(rows), 0, "eval", enabled=progress) as bar:
        for i in range(0, len(rows), batch_size):
            chunk = rows[i : i + batch_size]
            texts, grades = sample(chunk, SamplingParams(temperature=0.0, max_tokens=max_tokens), i)
            greedy_rewards += [x.reward for x in grades]
            outputs += texts
            if k > 1:
                params = SamplingParams(
                    temperature=temperature, top_p=top_p, max_tokens=max_tokens, n=k, seed=seed + i
                )
                _, sg = sample(chunk, params, i)
                sampled += [[x.reward for x in sg[j * k : (j + 1) * k]] for j in range(len(chunk))]
            bar.update(i + len(chunk), {"reward": sum(greedy_rewards) / len(greedy_rewards)})
    result = {
        "reward_mean": sum(greedy_rewards) / len(greedy_rewards),
        "exact_fraction": sum(r >= pass_threshold for r in greedy_rewards) / len(greedy_rewards),
        **(episode_metrics(episodes) if agent else {}),
    }
    if k > 1:
        result[f"pass@{k}"] = sum(
            pass_at_k(k, sum(r >= pass_threshold for r in rs), k) for rs in sampled
        ) / len(sampled)
        result["sample_reward_mean"] = sum(sum(rs) for rs in sampled) / (k * len(sampled))
    if return_rows:
        per_row = [{"output_text": o, "reward": r} for o, r in zip(outputs, greedy_rewards)]
        for out, ep in zip(per_row, episodes):  # episodes: the calls and the trajectory's counts too
            out.update(output_tools=ep.output_tools, trajectory=ep.trajectory())
        return result, per_row
    return result


@torch.no_grad()
def evaluate_policy(
    policy,
    ref,
    tok,
    rows: list[dict],
    reward_grader,
    extra_grader=None,
    samples: int = 4,
    max_tokens: int = 32,
    temperature: float = 1.0,
    seed: int = 0,
    chunk: int = 64,
    batch_size: int = 64,
) -> dict[str, float]:
    """PPO's and DPO's validation: sampled completions on ``rows``: mean reward, mean ``extra_grader`` score (e.g. a hidden gold
    grader) and the sequence KL(pi || pi_ref) estimated as the mean of sum_t (log pi - log pi_ref)."""
    backend = HFBackend(policy, tok)
    rewards, extra, kls, lengths = [], [], [], []
    for i in range(0, len(rows), batch_size):
        chunk_rows = rows[i : i + batch_size]
        prompts = [encode_row(tok, r) for r in chunk_rows]
        sp = SamplingParams(temperature=temperature, max_tokens=max_tokens, n=samples, seed=seed + i)
        roll = collect_rollout(backend, reward_grader, chunk_rows, prompts, sp, backend.pad_id)
        rewards += roll.rewards.flatten().tolist()
        if extra_grader is not None:
            pairs = [(chunk_rows[k // samples], make_sample(t)) for k, t in enumerate(roll.texts)]
            extra += [g.reward for g in grade_safely(extra_grader, pairs)]
        device = next(policy.parameters()).device
        ids, attn, m = (
            roll.input_ids.to(device),
            roll.attention_mask.to(device),
            roll.completion_mask.to(device),
        )
        T = roll.n_completion
        logp = per_token_logps(policy, ids, attn, T, temperature, chunk)
        ref_logp = per_token_logps(ref, ids, attn, T, temperature, chunk)
        kls += ((logp - ref_logp) * m).sum(-1).tolist()
        lengths += m.sum(-1).tolist()
    mean = lambda xs: sum(xs) / len(xs) if xs else float("nan")  # noqa: E731
    out = {"reward_mean": mean(rewards), "kl": mean(kls), "length_mean": mean(lengths)}
    if extra_grader is not None:
        out["extra_reward_mean"] = mean(extra)
    return out


def eval_command(
    model: str,
    data: Path,
    grader: str | None,
    task: str | None,
    samples: int,
    temperature: float,
    max_tokens: int,
    output: Path | None,
    agent: Path | None = None,
) -> dict:
    """``reinforge eval``: rows with ``tools``, or an ``agent`` YAML (the keys of RFT's ``agent:``
    section: tools, limits), are run as episodes."""
    from reinforge.config import load_config
    from reinforge.data.jsonl import write_jsonl
    from reinforge.data.rft import load_rft_rows
    from reinforge.errors import ReinforgeError
    from reinforge.graders import as_grader
    from reinforge.graders.registry import load_spec
    from reinforge.graders.templating import check_rows
    from reinforge.tasks import get_task
    from reinforge.train.agent import AgentSettings, agent_runner
    from reinforge.train.progress import print_table
    from reinforge.train.warmup import load_model

    rows = load_rft_rows(data)
    if grader:
        g = as_grader(grader)
        # a template naming a field the first row lacks fails here, before the model loads
        check_rows(load_spec(grader), [(first_row_where(str(data), str(data)), rows[0])])
    elif task:
        g = get_task(task).grader
    else:
        raise ReinforgeError("eval: pass --grader G.json or --task NAME")
    settings = load_config(AgentSettings, agent, []) if agent else None
    runner = agent_runner(SimpleNamespace(agent=settings, max_new_tokens=max_tokens), rows)
    policy, tok = load_model(model)
    result, per_row = evaluate(
        HFBackend(policy, tok),
        tok,
        g,
        rows,
        max_tokens,
        k=samples,
        temperature=temperature,  # of the pass@k samples; 0 is greedy too (it was silently 1.0)
        return_rows=True,
        agent=runner,
        progress=True,
    )
    if output:
        write_jsonl(output, per_row)
    print_table(f"eval {model} on {data} ({len(rows)} rows)", result)
    return result
