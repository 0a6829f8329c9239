"""ctypes declarations of include/hookformer.h and include/hookformer_sae.h (the public headers)
and the library lookup.

Only what the Python layer calls is declared. Every struct mirrors the header field for field;
tests/python/test_abi.py compares each one's size and offsets with what the C compiler says
(tests/python/abi_layout.c), so a change to the header that is not made here fails the suite.
"""

import ctypes as C
import os
from pathlib import Path

HK_MAX_DIMS = 6
HK_RUN_ALL_LAYERS = 2**63 - 1

# hk_status
HK_OK = 0
HK_ERR_HOOK = 9
HK_STOPPED = 100
# hk_hook_result
HK_HOOK_CONTINUE, HK_HOOK_STOP, HK_HOOK_ERROR = 0, 1, 2
# hk_dtype
HK_DTYPE_F32, HK_DTYPE_F16, HK_DTYPE_BF16, HK_DTYPE_I32, HK_DTYPE_I64, HK_DTYPE_U8 = range(6)
# hk_device
HK_DEVICE_CPU, HK_DEVICE_CUDA, HK_DEVICE_TEST = 0, 1, 2
HK_DEVICE_INDEX_AUTO = -1
# hk_weights_mode
HK_WEIGHTS_BLOCKS, HK_WEIGHTS_F32 = 0, 1
# hk_bos_mode
HK_BOS_DEFAULT, HK_BOS_NO, HK_BOS_YES = -1, 0, 1
# hk_special_token
HK_TOK_BOS, HK_TOK_EOS, HK_TOK_PAD, HK_TOK_UNK = range(4)
HK_TOK_ADD_SPECIAL, HK_TOK_SKIP_SPECIAL = 1, 2
# hk_sae_arch, hk_sae_norm, hk_sae_mode (hookformer_sae.h)
HK_SAE_STANDARD, HK_SAE_JUMPRELU, HK_SAE_TOPK, HK_SAE_GATED = range(4)
HK_SAE_NORM_NONE, HK_SAE_NORM_CONSTANT_NORM_RESCALE, HK_SAE_NORM_LAYER_NORM = range(3)
HK_SAE_OBSERVE, HK_SAE_REPLACE, HK_SAE_REPLACE_WITH_ERROR = range(3)

i64 = C.c_int64
i64p = C.POINTER(C.c_int64)
i32p = C.POINTER(C.c_int32)
f32p = C.POINTER(C.c_float)
vp = C.c_void_p


class Tensor(C.Structure):  # hk_tensor
    _fields_ = [("data", vp), ("dtype", C.c_int), ("device", C.c_int), ("ndim", C.c_int),
                ("shape", i64 * HK_MAX_DIMS), ("stride", i64 * HK_MAX_DIMS)]


class HookPointInfo(C.Structure):  # hk_hook_point
    _fields_ = [("name", C.c_char_p), ("layer", i64), ("ndim", C.c_int),
                ("shape", i64 * HK_MAX_DIMS), ("dims", C.c_char_p), ("optional", C.c_bool)]


class HookCtx(C.Structure):  # hk_hook_ctx
    _fields_ = [("name", C.c_char_p), ("layer", i64), ("batch_offset", i64),
                ("pos_offset", i64), ("key_offset", i64), ("run_batch", i64),
                ("run_seq", i64), ("model", vp)]


class LoadOpts(C.Structure):  # hk_load_opts
    _fields_ = [("weights", C.c_int), ("device", C.c_int), ("weights_dtype", C.c_int),
                ("device_index", C.c_int)]


class RunOpts(C.Structure):  # hk_run_opts
    _fields_ = [("stop_at_layer", i64), ("token_types", i32p)]


class SamplerOpts(C.Structure):  # hk_sampler_opts
    _fields_ = [("temperature", C.c_float), ("top_k", C.c_int), ("top_p", C.c_float),
                ("seed", C.c_uint64)]


class StoreInfo(C.Structure):  # hk_store_info
    _fields_ = [("path", C.c_char_p), ("model_id", C.c_char_p), ("family", C.c_char_p),
                ("dtype", C.c_char_p), ("positions", C.c_char_p), ("compression", C.c_char_p),
                ("version", C.c_char_p), ("model_path", C.c_char_p), ("n_rows", i64),
                ("n_sequences", i64), ("ctx", i64), ("n_hooks", C.c_size_t),
                ("file_bytes", C.c_uint64)]


class StoreHookInfo(C.Structure):  # hk_store_hook_info
    _fields_ = [("name", C.c_char_p), ("per_sequence", C.c_bool), ("ndim", C.c_int),
                ("shape", i64 * HK_MAX_DIMS), ("dims", C.c_char_p), ("chunk_rows", i64),
                ("data_bytes", C.c_uint64), ("stored_bytes", C.c_uint64)]


class PromptSet(C.Structure):  # hk_prompt_set
    _fields_ = [("n_prompts", i64), ("seq", i64), ("tokens", i32p), ("answer", i32p),
                ("wrong", i32p)]


class SweepSpec(C.Structure):  # hk_sweep_spec
    _fields_ = [("point", C.c_char_p), ("per_position", C.c_bool), ("per_head", C.c_bool),
                ("layer", i64)]


class SweepResult(C.Structure):  # hk_sweep_result
    _fields_ = [("point", C.c_char * 64), ("ndim", C.c_int), ("shape", i64 * 3),
                ("dims", C.c_char_p * 3), ("layer0", i64), ("values", f32p), ("change", f32p),
                ("normalized", f32p), ("baseline", C.c_float), ("reference", C.c_float),
                ("patches", i64), ("forwards", i64), ("batch", i64)]


class SweepPart(C.Structure):  # hk_sweep_part
    _fields_ = [("part", i64), ("n_parts", i64)]


class PatchOpts(C.Structure):  # hk_patch_opts
    _fields_ = [("clean", i32p), ("clean_seq", i64), ("pos_map", i64p), ("source", vp),
                ("batch", i64), ("max_bytes", C.c_size_t), ("full_forward", C.c_bool),
                ("hooks", vp), ("share", SweepPart)]


class AblateOpts(C.Structure):  # hk_ablate_opts
    _fields_ = [("mode", C.c_int), ("ref", i32p), ("n_ref", i64), ("ref_seq", i64),
                ("ref_lengths", i64p), ("resample_idx", i64p), ("seed", C.c_uint64),
                ("batch", i64), ("max_bytes", C.c_size_t), ("full_forward", C.c_bool),
                ("hooks", vp), ("share", SweepPart)]


class LensResult(C.Structure):  # hk_lens_result
    _fields_ = [("n_rows", i64), ("seq", i64), ("k", i64), ("top_ids", i32p),
                ("top_logits", f32p), ("top_probs", f32p)]


class DlaResult(C.Structure):  # hk_dla_result
    _fields_ = [("n_components", i64), ("n_prompts", i64), ("n_layers", i64), ("n_heads", i64),
                ("labels", C.POINTER(C.c_char_p)), ("values", f32p), ("total", f32p)]


class SteerVector(C.Structure):  # hk_steer_vector
    _fields_ = [("point", C.c_char * 64), ("layer", i64), ("n_pos", i64), ("d_model", i64),
                ("vec", f32p)]


class SteerApply(C.Structure):  # hk_steer_apply
    _fields_ = [("v", C.POINTER(SteerVector)), ("coef", C.c_float), ("from", i64)]


class SaeLoadOpts(C.Structure):  # hk_sae_load_opts
    _fields_ = [("hook", C.c_char_p)]


class SaeInfo(C.Structure):  # hk_sae_info
    _fields_ = [("arch", C.c_int), ("transcoder", C.c_bool), ("d_in", i64), ("d_sae", i64),
                ("d_out", i64), ("k", i64), ("apply_b_dec_to_input", C.c_bool),
                ("norm", C.c_int), ("hook", C.c_char_p), ("hook_out", C.c_char_p),
                ("path", C.c_char_p), ("format", C.c_char_p)]


class SaeMetrics(C.Structure):  # hk_sae_metrics
    _fields_ = [("tokens", i64), ("d_sae", i64), ("mse", C.c_double),
                ("explained_variance", C.c_double), ("l0", C.c_double), ("l1", C.c_double),
                ("dead", i64), ("ce_without", C.c_double), ("ce_with", C.c_double),
                ("ce_ablation", C.c_double), ("ce_delta", C.c_double),
                ("ce_score", C.c_double)]


class SaeTop(C.Structure):  # hk_sae_top
    _fields_ = [("d_sae", i64), ("top", i64), ("window", i64), ("tokens", i64),
                ("active", i64p), ("max_act", f32p), ("top_values", f32p), ("top_seq", i64p),
                ("top_pos", i64p), ("win_tokens", i32p), ("win_values", f32p)]


HOOK_FN = C.CFUNCTYPE(C.c_int, C.POINTER(Tensor), C.POINTER(HookCtx), vp)
FILTER_FN = C.CFUNCTYPE(C.c_bool, C.c_char_p, vp)

# The structs test_abi.py checks against the compiler, by their C names.
STRUCTS = {
    "hk_tensor": Tensor, "hk_hook_point": HookPointInfo, "hk_hook_ctx": HookCtx,
    "hk_load_opts": LoadOpts, "hk_run_opts": RunOpts, "hk_sampler_opts": SamplerOpts, "hk_store_info": StoreInfo,
    "hk_store_hook_info": StoreHookInfo, "hk_prompt_set": PromptSet,
    "hk_sweep_spec": SweepSpec, "hk_sweep_result": SweepResult, "hk_sweep_part": SweepPart,
    "hk_patch_opts": PatchOpts,
    "hk_ablate_opts": AblateOpts, "hk_lens_result": LensResult, "hk_dla_result": DlaResult,
    "hk_steer_vector": SteerVector, "hk_steer_apply": SteerApply,
    "hk_sae_load_opts": SaeLoadOpts, "hk_sae_info": SaeInfo, "hk_sae_metrics": SaeMetrics,
    "hk_sae_top": SaeTop,
}

S = C.c_int  # hk_status
P = vp       # an opaque handle
PP = C.POINTER(vp)

# name: (restype, argtypes)
_SIGNATURES = {
    "hk_last_error": (C.c_char_p, []),
    "hk_status_name": (C.c_char_p, [C.c_int]),
    "hk_version": (C.c_char_p, []),
    "hk_free": (None, [vp]),
    "hk_dtype_name": (C.c_char_p, [C.c_int]),
    "hk_set_num_threads": (None, [C.c_int]),
    "hk_model_load": (S, [C.c_char_p, PP]),
    "hk_load_default_opts": (LoadOpts, []),
    "hk_model_load_opts": (S, [C.c_char_p, C.POINTER(LoadOpts), PP]),
    "hk_device_parse": (S, [C.c_char_p, C.POINTER(C.c_int), C.POINTER(C.c_int)]),
    "hk_device_count": (S, [C.c_int, C.POINTER(C.c_int)]),
    "hk_model_device_index": (C.c_int, [P]),
    "hk_model_device_string": (C.c_char_p, [P]),
    "hk_model_free": (None, [P]),
    "hk_model_config_json": (S, [P, C.POINTER(vp)]),
    "hk_model_n_params": (i64, [P]),
    "hk_model_vocab_size": (i64, [P]),
    "hk_model_n_layers": (i64, [P]),
    "hk_model_d_model": (i64, [P]),
    "hk_model_family": (C.c_char_p, [P]),
    "hk_model_output_dim": (i64, [P]),
    "hk_model_headless": (C.c_bool, [P]),
    "hk_model_token_types": (i64, [P]),
    "hk_model_max_positions": (i64, [P, C.POINTER(C.c_bool)]),
    "hk_model_weight": (S, [P, C.c_char_p, C.POINTER(Tensor)]),
    "hk_model_weight_count": (C.c_size_t, [P]),
    "hk_model_weight_name": (S, [P, C.c_size_t, C.c_char_p, C.c_size_t]),
    "hk_model_hook_count": (C.c_size_t, [P]),
    "hk_glob_match": (C.c_bool, [C.c_char_p, C.c_char_p]),
    "hk_model_hook_at": (C.POINTER(HookPointInfo), [P, C.c_size_t]),
    "hk_hooks_new": (S, [P, PP]),
    "hk_hooks_free": (None, [P]),
    "hk_hooks_add": (S, [P, C.c_char_p, HOOK_FN, vp, C.POINTER(C.c_uint64)]),
    "hk_hooks_add_filter": (S, [P, FILTER_FN, vp, HOOK_FN, vp, C.POINTER(C.c_uint64)]),
    "hk_hooks_count": (C.c_size_t, [P]),
    "hk_hooks_remove": (S, [P, C.c_uint64]),
    "hk_hooks_scope_begin": (C.c_size_t, [P]),
    "hk_hooks_scope_end": (None, [P, C.c_size_t]),
    "hk_model_run_opts": (S, [P, P, i32p, i64p, i64, i64, C.POINTER(RunOpts), f32p]),
    "hk_model_run_typed": (S, [P, P, i32p, i32p, i64p, i64, i64, f32p]),
    "hk_model_embed": (S, [P, P, i32p, i32p, i64p, i64, i64, C.c_int, C.c_int, f32p]),
    "hk_pooling_name": (C.c_char_p, [C.c_int]),
    "hk_model_pooling": (C.c_int, [P, C.POINTER(C.c_bool)]),
    "hk_cache_new": (S, [P, PP]),
    "hk_cache_free": (None, [P]),
    "hk_cache_attach": (S, [P, P, C.POINTER(C.c_char_p), C.c_size_t, C.c_char_p]),
    "hk_cache_set_lengths": (S, [P, i64p, i64]),
    "hk_cache_get": (C.POINTER(Tensor), [P, C.c_char_p]),
    "hk_cache_count": (C.c_size_t, [P]),
    "hk_cache_name_at": (C.c_char_p, [P, C.c_size_t]),
    "hk_cache_clear": (None, [P]),
    "hk_model_tokenizer": (P, [P]),
    "hk_model_tokenizer_note": (C.c_char_p, [P]),
    "hk_model_default_prepend_bos": (C.c_bool, [P]),
    "hk_model_encode": (S, [P, C.c_char_p, C.c_size_t, C.c_int, C.POINTER(i32p),
                            C.POINTER(C.c_size_t)]),
    "hk_tokenizer_decode": (S, [P, i32p, C.c_size_t, C.c_uint, C.POINTER(vp),
                                C.POINTER(C.c_size_t)]),
    "hk_tokenizer_special_id": (C.c_int32, [P, C.c_int]),
    "hk_tokenizer_vocab_size": (i64, [P]),
    "hk_sampler_default": (SamplerOpts, []),
    "hk_generate": (S, [P, P, i32p, i64, i64, i64, C.POINTER(SamplerOpts), i32p, C.c_size_t,
                        i32p, i64p]),
    "hk_store_open": (S, [C.c_char_p, PP]),
    "hk_store_close": (S, [P]),
    "hk_store_get_info": (S, [P, C.POINTER(StoreInfo)]),
    "hk_store_hook_at": (S, [P, C.c_size_t, C.POINTER(StoreHookInfo)]),
    "hk_store_read": (S, [P, C.c_char_p, i64p, i64p, C.c_size_t, f32p]),
    "hk_store_row_elems": (i64, [P, C.c_char_p]),
    "hk_store_sequence": (S, [P, i64, i64p, i64p, i64p, i64p]),
    "hk_store_read_token_ids": (S, [P, i64, i64, i32p]),
    "hk_prompt_metric": (S, [P, P, C.POINTER(PromptSet), f32p]),
    "hk_patch_sweep": (S, [P, C.POINTER(PromptSet), C.POINTER(PatchOpts), C.POINTER(SweepSpec),
                           C.POINTER(SweepResult)]),
    "hk_ablate_sweep": (S, [P, C.POINTER(PromptSet), C.POINTER(AblateOpts),
                            C.POINTER(SweepSpec), C.POINTER(SweepResult)]),
    "hk_sweep_result_free": (None, [C.POINTER(SweepResult)]),
    "hk_sweep_by_name": (S, [C.c_char_p, C.POINTER(SweepSpec)]),
    "hk_sweep_names": (C.c_char_p, []),
    "hk_logit_lens_hooked": (S, [P, P, i32p, i64, i64, C.POINTER(LensResult)]),
    "hk_lens_result_free": (None, [C.POINTER(LensResult)]),
    "hk_dla_hooked": (S, [P, P, C.POINTER(PromptSet), C.POINTER(DlaResult)]),
    "hk_dla_result_free": (None, [C.POINTER(DlaResult)]),
    "hk_steer_from_prompts": (S, [P, C.c_char_p, i64, i32p, i64, i32p, i64, C.c_int,
                                  C.POINTER(SteerVector)]),
    "hk_steer_vector_free": (None, [C.POINTER(SteerVector)]),
    "hk_steer_add": (S, [P, C.POINTER(SteerApply), C.POINTER(C.c_uint64)]),
    # hookformer_sae.h
    "hk_sae_load": (S, [C.c_char_p, C.POINTER(SaeLoadOpts), PP]),
    "hk_sae_free": (None, [P]),
    "hk_sae_get_info": (S, [P, C.POINTER(SaeInfo)]),
    "hk_sae_arch_name": (C.c_char_p, [C.c_int]),
    "hk_sae_weight": (S, [P, C.c_char_p, C.POINTER(Tensor)]),
    "hk_sae_encode": (S, [P, f32p, i64, f32p]),
    "hk_sae_decode": (S, [P, f32p, i64, f32p]),
    "hk_sae_mode_name": (C.c_char_p, [C.c_int]),
    "hk_sae_attach": (S, [P, P, C.c_int, PP]),
    "hk_sae_detach": (None, [P]),
    "hk_sae_eval_new": (S, [P, P, PP]),
    "hk_sae_eval_add": (S, [P, i32p, i64p, i64, i64]),
    "hk_sae_eval_metrics": (S, [P, C.POINTER(SaeMetrics)]),
    "hk_sae_eval_free": (None, [P]),
    "hk_sae_top_contexts": (S, [P, P, C.POINTER(i32p), i64p, i64, i64, i64, i64,
                                C.POINTER(SaeTop)]),
    "hk_sae_top_free": (None, [C.POINTER(SaeTop)]),
    "hk_sae_top_save": (S, [C.POINTER(SaeTop), P, P, C.c_char_p, C.c_bool]),
    "hk_sae_top_html": (S, [C.POINTER(SaeTop), P, P, i64p, C.c_size_t, C.c_char_p, C.c_bool]),
    "hk_sae_store_create": (S, [C.c_char_p, C.c_bool, P, C.POINTER(vp), C.c_size_t, PP]),
    "hk_sae_store_attach": (S, [P, P]),
    "hk_sae_store_run": (S, [P, P, P, i32p, i64p, i64, i64]),
    "hk_sae_store_nnz": (i64, [P, C.c_size_t]),
    "hk_sae_store_close": (S, [P]),
    "hk_sae_store_discard": (None, [P]),
}


class HookformerError(RuntimeError):
    """A hookformer C call failed: `status` is the hk_status name ("HK_ERR_FORMAT"), the
    message is hk_last_error()'s (it names the file, field or hook that was wrong)."""

    def __init__(self, message, status="HK_ERR_INTERNAL"):
        super().__init__(message)
        self.status = status


def _find_library():
    """HOOKFORMER_LIBRARY (a path), else the libhookformer.so installed in this package."""
    env = os.environ.get("HOOKFORMER_LIBRARY")
    if env:
        if not Path(env).is_file():
            raise OSError(f"HOOKFORMER_LIBRARY={env}: no such file (expected the path of "
                          "libhookformer.so, e.g. build/libhookformer.so)")
        return env
    here = Path(__file__).resolve().parent / "libhookformer.so"
    if here.is_file():
        return str(here)
    raise OSError(f"libhookformer.so not found: not in {here.parent} (pip install . from the "
                  "repository root puts it there) and HOOKFORMER_LIBRARY is not set")


def _load():
    lib = C.CDLL(_find_library())
    for name, (res, args) in _SIGNATURES.items():
        fn = getattr(lib, name)
        fn.restype = res
        fn.argtypes = args
    # variadic (printf-style): called with "%s" and one string
    lib.hk_hook_error.restype = None
    return lib


lib = _load()


def last_error():
    return (lib.hk_last_error() or b"").decode("utf-8", "replace")


def check(status, what=None):
    """Raise HookformerError for a failing hk_status (HK_STOPPED is the caller's to handle)."""
    if status == HK_OK:
        return
    name = lib.hk_status_name(status).decode()
    msg = last_error() or name
    if what:
        msg = f"{what}: {msg}"
    raise HookformerError(f"{msg} ({name})", name)


def ptr(arr, ctype):
    """Pointer to a contiguous numpy array's data (None for None)."""
    if arr is None:
        return None
    return arr.ctypes.data_as(C.POINTER(ctype))
