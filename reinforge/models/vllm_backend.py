"""A :class:`~reinforge.models.generation.GenerationBackend` on vLLM, used on a GPU when vLLM is installed.

vLLM runs in this process beside the policy ("colocated", as TRL's ``vllm_mode="colocate"``): paged
attention, continuous batching and prefix caching (the G samples of a prompt share its prefill). The
policy changes every step, so its weights are pushed into the engine before a generation whenever they
changed since the last push. Log-probs are vLLM's processed ones (after temperature), the same quantity
:class:`HFBackend` returns.

Checked against vLLM's V1 source (``vllm/v1/executor/uniproc_executor.py``: the external launcher needs
the engine in this process; ``WorkerWrapperBase.__getattr__`` reaches the worker's ``model_runner``), as
TRL 1.16's colocated mode does. Not run against a real vLLM here (no GPU with vLLM on this project's
machines): ``tests/models/test_vllm_backend.py`` runs it on a stand-in engine with vLLM's interface, and
against vLLM itself wherever vLLM and CUDA are there.
"""

from __future__ import annotations

import os
import socket

from reinforge.errors import ReinforgeError
from reinforge.models.generation import Generations, HFBackend, SamplingParams


def vllm_available() -> bool:
    try:  # vLLM is a heavy optional dependency (GPU only): imported where it is used
        import vllm  # noqa: F401
    except ImportError:
        return False
    return True


def _single_process_env() -> None:
    """vLLM's in-process executor ("external_launcher") joins a torch.distributed group of one. Its V1
    engine must run in this process (``VLLM_ENABLE_V1_MULTIPROCESSING=0``): ``ExecutorWithExternalLauncher``
    asserts it (vllm/v1/executor/uniproc_executor.py), and only then does ``LLM.llm_engine`` expose the
    ``model_executor`` whose driver worker holds the model the weights are pushed into."""
    for key, value in (("RANK", "0"), ("LOCAL_RANK", "0"), ("WORLD_SIZE", "1"), ("MASTER_ADDR", "localhost")):
        os.environ.setdefault(key, value)
    os.environ["VLLM_ENABLE_V1_MULTIPROCESSING"] = "0"
    if not os.environ.get("MASTER_PORT"):
        with socket.socket() as s:
            s.bind(("localhost", 0))
            os.environ["MASTER_PORT"] = str(s.getsockname()[1])


class VLLMBackend:
    """Sampling with a colocated vLLM engine that mirrors ``model``'s weights."""

    def __init__(
        self,
        model,
        tokenizer,
        eos_token_ids: list[int] | None = None,
        gpu_memory_utilization: float = 0.3,
        max_model_len: int | None = None,
        llm=None,
    ):
        try:
            import vllm  # heavy and optional (GPU only): imported only when this backend is chosen
        except ImportError as e:
            raise ReinforgeError("generation_backend: vllm needs vLLM installed (pip install vllm)") from e
        self.vllm = vllm
        self.model = model
        self.tokenizer = tokenizer
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        self.eos_ids = eos_token_ids or [tokenizer.eos_token_id]
        if llm is None:
            _single_process_env()
            dtype = next(model.parameters()).dtype
            llm = vllm.LLM(
                model=model.name_or_path,
                tokenizer=getattr(tokenizer, "name_or_path", None) or model.name_or_path,
                dtype=str(dtype).removeprefix("torch."),
                gpu_memory_utilization=gpu_memory_utilization,
                max_model_len=max_model_len,
                enable_prefix_caching=True,
                # vLLM sizes its activation reserve for this many tokens per scheduler step; its default
                # (32k) can leave no room for the KV cache in the share of the GPU left beside training
                max_num_batched_tokens=4096,
                distributed_executor_backend="external_launcher",
                logprobs_mode="processed_logprobs",  # after temperature, as HFBackend reports them
                seed=0,
            )
        self.llm = llm
        self._pushed: tuple[int, ...] | None = None  # the weights' version counters at the last push

    def _weights_version(self) -> tuple[int, ...]:
        # every in-place update (optimizer.step, load_state_dict) bumps a tensor's version counter
        return tuple(p._version for p in self.model.parameters())

    def sync_weights(self) -> bool:
        """Push the policy's weights into the engine if they changed since the last push; True if pushed."""
        version = self._weights_version()
        if version == self._pushed:
            return False
        executor = getattr(self.llm.llm_engine, "model_executor", None)
        if executor is None:  # a multiprocess engine: its model lives in another process
            raise ReinforgeError(
                "generation_backend: vllm runs its engine in another process (VLLM_ENABLE_V1_MULTIPROCESSING); "
                "set VLLM_ENABLE_V1_MULTIPROCESSING=0 so the policy's weights can be pushed into it"
            )
        # V1: the driver worker (WorkerWrapperBase) hands attributes on to its Worker, whose runner holds it
        engine_model = executor.driver_worker.model_runner.model
        engine_model.load_weights((name, p.data) for name, p in self.model.named_parameters())
        self.llm.reset_prefix_cache()  # cached prefixes were computed with the old weights
        self._pushed = version
        return True

    def generate(self, prompt_ids: list[list[int]], params: SamplingParams) -> Generations:
        self.sync_weights()
        stop = [i for i in self.eos_ids if i is not None and i >= 0]
        sp = self.vllm.SamplingParams(
            n=params.n,
            temperature=params.temperature,
            top_p=params.top_p,
            max_tokens=params.max_tokens,
            seed=params.seed,
            logprobs=0,  # the sampled token's log-prob only
            stop_token_ids=stop,
            ignore_eos=not stop,  # no stop id (e.g. -1): a fixed length
        )
        outs = self.llm.generate(
            [{"prompt_token_ids": p} for p in prompt_ids], sampling_params=sp, use_tqdm=False
        )
        comp, logprobs, reasons = [], [], []
        for request in outs:  # one per prompt, in order; its n samples follow: prompt-major
            for sample in sorted(request.outputs, key=lambda o: o.index):
                ids = list(sample.token_ids)
                comp.append(ids)
                logprobs.append([step[tok].logprob for step, tok in zip(sample.logprobs, ids)])
                reasons.append("stop" if sample.finish_reason == "stop" else "length")
        texts = self.tokenizer.batch_decode(comp, skip_special_tokens=True)
        return Generations(comp, logprobs, texts, reasons, n=params.n)


def make_backend(kind: str, model, tokenizer, compile_decode: bool = False):
    """The generation backend a trainer asked for: ``hf``, ``vllm``, or ``auto`` (vLLM on a GPU when it
    is installed, else the built-in one, with ``compile_decode`` passed on)."""
    device = next(model.parameters()).device
    adapters = hasattr(model, "peft_config")  # vLLM would need merged LoRA weights: not done here
    if kind == "vllm" or (kind == "auto" and device.type == "cuda" and not adapters and vllm_available()):
        if adapters:
            raise ReinforgeError("generation_backend: vllm does not take LoRA adapters here; use hf or auto")
        if not getattr(model, "name_or_path", ""):
            raise ReinforgeError(
                "generation_backend: vllm loads the model from a hub id or directory; this one has none"
            )
        return VLLMBackend(model, tokenizer)
    return HFBackend(model, tokenizer, compile_decode=compile_decode)
