/* Option table entries the model-running subcommands share (run, generate, estimate, and the
 * text options of the others), so that the names and help lines live in one place:
 *   static const cli_opt run_opts[] = {CLI_OPT_MODEL, CLI_OPTS_PROMPT, ..., {NULL, NULL, NULL}};
 */
#ifndef HK_TOOLS_CLI_OPTS_H
#define HK_TOOLS_CLI_OPTS_H

#include "args.h"
#include "mem_limit.h"

#define CLI_OPT_MODEL                                                                         \
    {"model", "DIR",                                                                          \
     "Hugging Face checkpoint folder (config.json + *.safetensors) or a .gguf file; required"}
#define CLI_OPT_THREADS \
    {"threads", "N", "threads for GEMM and the kernels (default: the library's choice)"}
#define CLI_OPT_PLUGIN \
    {"plugin", "SPEC", "load a plugin: PATH[:key=value,...]; repeatable, loaded in order"}
#define CLI_OPT_CHUNK \
    {"chunk", "C", "feed the prompt C positions at a time through the KV cache (default: at once)"}
#define CLI_OPT_MEM_LIMIT {"mem-limit", "SIZE", CLI_MEM_LIMIT_HELP}

/* The prompt: ids, one text, or a file of texts (tools/prompt.h reads them), and the BOS rule. */
#define CLI_OPTS_TEXT                                                                          \
    {"prompt", "TEXT", "the prompt as text, encoded with the model's tokenizer.json"},         \
    {"prompts", "FILE", "one text prompt per line ('-': stdin); raw text, no escapes"},        \
    {"prepend-bos", NULL, "put the BOS token first (default: the family's rule, as TL)"},      \
    {"no-prepend-bos", NULL, "no BOS token first (default: the family's rule, as TL)"}
#define CLI_OPTS_PROMPT                                                                        \
    {"tokens", "IDS", "the prompt as comma-separated token ids, e.g. 464,2068,7586"},          \
    CLI_OPTS_TEXT

/* What `hookformer CMD --help` says about the prompt options. */
#define CLI_PROMPT_HELP                                                                        \
    "The prompt is --tokens IDS, --prompt TEXT or --prompts FILE (exactly one). Text is\n"      \
    "encoded with the tokenizer.json of the model folder; a BOS token goes first as\n"          \
    "TransformerLens's to_tokens puts it (default_prepend_bos: yes for gpt2, llama, mistral,\n" \
    "phi3; no for qwen2, gpt_neox; never doubled when the tokenizer adds it itself), which\n"  \
    "--prepend-bos / --no-prepend-bos override. --prompts FILE holds one prompt per line:\n"   \
    "each line is raw UTF-8 text (backslashes are not escapes; a trailing \\r is dropped;\n"   \
    "empty lines are skipped); '-' reads standard input."

#endif
