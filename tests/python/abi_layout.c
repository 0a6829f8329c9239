/* The layout of the public structs as the C compiler sees them, one line each:
 *   hk_tensor 120            (sizeof)
 *   hk_tensor.data 0         (offsetof)
 * tests/python/test_abi.py compares every line with the ctypes declarations of
 * python/hookformer/_lib.py, so that the binding cannot drift from include/hookformer.h. */
#include <stddef.h>
#include <stdio.h>

#include "hookformer.h"

#define STRUCT(s) printf("%s %zu\n", #s, sizeof(s))
#define FIELD(s, f) printf("%s.%s %zu\n", #s, #f, offsetof(s, f))

int main(void) {
    STRUCT(hk_tensor);
    FIELD(hk_tensor, data);
    FIELD(hk_tensor, dtype);
    FIELD(hk_tensor, device);
    FIELD(hk_tensor, ndim);
    FIELD(hk_tensor, shape);
    FIELD(hk_tensor, stride);
    STRUCT(hk_hook_point);
    FIELD(hk_hook_point, name);
    FIELD(hk_hook_point, layer);
    FIELD(hk_hook_point, ndim);
    FIELD(hk_hook_point, shape);
    FIELD(hk_hook_point, dims);
    FIELD(hk_hook_point, optional);
    STRUCT(hk_hook_ctx);
    FIELD(hk_hook_ctx, name);
    FIELD(hk_hook_ctx, layer);
    FIELD(hk_hook_ctx, batch_offset);
    FIELD(hk_hook_ctx, pos_offset);
    FIELD(hk_hook_ctx, key_offset);
    FIELD(hk_hook_ctx, run_batch);
    FIELD(hk_hook_ctx, run_seq);
    FIELD(hk_hook_ctx, model);
    STRUCT(hk_load_opts);
    FIELD(hk_load_opts, weights);
    FIELD(hk_load_opts, device);
    FIELD(hk_load_opts, weights_dtype);
    FIELD(hk_load_opts, device_index);
    STRUCT(hk_run_opts);
    FIELD(hk_run_opts, stop_at_layer);
    FIELD(hk_run_opts, token_types);
    STRUCT(hk_sampler_opts);
    FIELD(hk_sampler_opts, temperature);
    FIELD(hk_sampler_opts, top_k);
    FIELD(hk_sampler_opts, top_p);
    FIELD(hk_sampler_opts, seed);
    STRUCT(hk_store_info);
    FIELD(hk_store_info, path);
    FIELD(hk_store_info, model_id);
    FIELD(hk_store_info, family);
    FIELD(hk_store_info, dtype);
    FIELD(hk_store_info, positions);
    FIELD(hk_store_info, compression);
    FIELD(hk_store_info, version);
    FIELD(hk_store_info, model_path);
    FIELD(hk_store_info, n_rows);
    FIELD(hk_store_info, n_sequences);
    FIELD(hk_store_info, ctx);
    FIELD(hk_store_info, n_hooks);
    FIELD(hk_store_info, file_bytes);
    STRUCT(hk_store_hook_info);
    FIELD(hk_store_hook_info, name);
    FIELD(hk_store_hook_info, per_sequence);
    FIELD(hk_store_hook_info, ndim);
    FIELD(hk_store_hook_info, shape);
    FIELD(hk_store_hook_info, dims);
    FIELD(hk_store_hook_info, chunk_rows);
    FIELD(hk_store_hook_info, data_bytes);
    FIELD(hk_store_hook_info, stored_bytes);
    STRUCT(hk_prompt_set);
    FIELD(hk_prompt_set, n_prompts);
    FIELD(hk_prompt_set, seq);
    FIELD(hk_prompt_set, tokens);
    FIELD(hk_prompt_set, answer);
    FIELD(hk_prompt_set, wrong);
    STRUCT(hk_sweep_spec);
    FIELD(hk_sweep_spec, point);
    FIELD(hk_sweep_spec, per_position);
    FIELD(hk_sweep_spec, per_head);
    FIELD(hk_sweep_spec, layer);
    STRUCT(hk_sweep_result);
    FIELD(hk_sweep_result, point);
    FIELD(hk_sweep_result, ndim);
    FIELD(hk_sweep_result, shape);
    FIELD(hk_sweep_result, dims);
    FIELD(hk_sweep_result, layer0);
    FIELD(hk_sweep_result, values);
    FIELD(hk_sweep_result, change);
    FIELD(hk_sweep_result, normalized);
    FIELD(hk_sweep_result, baseline);
    FIELD(hk_sweep_result, reference);
    FIELD(hk_sweep_result, patches);
    FIELD(hk_sweep_result, forwards);
    FIELD(hk_sweep_result, batch);
    STRUCT(hk_sweep_part);
    FIELD(hk_sweep_part, part);
    FIELD(hk_sweep_part, n_parts);
    STRUCT(hk_patch_opts);
    FIELD(hk_patch_opts, clean);
    FIELD(hk_patch_opts, clean_seq);
    FIELD(hk_patch_opts, pos_map);
    FIELD(hk_patch_opts, source);
    FIELD(hk_patch_opts, batch);
    FIELD(hk_patch_opts, max_bytes);
    FIELD(hk_patch_opts, full_forward);
    FIELD(hk_patch_opts, hooks);
    FIELD(hk_patch_opts, share);
    STRUCT(hk_ablate_opts);
    FIELD(hk_ablate_opts, mode);
    FIELD(hk_ablate_opts, ref);
    FIELD(hk_ablate_opts, n_ref);
    FIELD(hk_ablate_opts, ref_seq);
    FIELD(hk_ablate_opts, ref_lengths);
    FIELD(hk_ablate_opts, resample_idx);
    FIELD(hk_ablate_opts, seed);
    FIELD(hk_ablate_opts, batch);
    FIELD(hk_ablate_opts, max_bytes);
    FIELD(hk_ablate_opts, full_forward);
    FIELD(hk_ablate_opts, hooks);
    FIELD(hk_ablate_opts, share);
    STRUCT(hk_lens_result);
    FIELD(hk_lens_result, n_rows);
    FIELD(hk_lens_result, seq);
    FIELD(hk_lens_result, k);
    FIELD(hk_lens_result, top_ids);
    FIELD(hk_lens_result, top_logits);
    FIELD(hk_lens_result, top_probs);
    STRUCT(hk_dla_result);
    FIELD(hk_dla_result, n_components);
    FIELD(hk_dla_result, n_prompts);
    FIELD(hk_dla_result, n_layers);
    FIELD(hk_dla_result, n_heads);
    FIELD(hk_dla_result, labels);
    FIELD(hk_dla_result, values);
    FIELD(hk_dla_result, total);
    STRUCT(hk_steer_vector);
    FIELD(hk_steer_vector, point);
    FIELD(hk_steer_vector, layer);
    FIELD(hk_steer_vector, n_pos);
    FIELD(hk_steer_vector, d_model);
    FIELD(hk_steer_vector, vec);
    STRUCT(hk_steer_apply);
    FIELD(hk_steer_apply, v);
    FIELD(hk_steer_apply, coef);
    FIELD(hk_steer_apply, from);
    return 0;
}
