/* The parts of a tokenizer, shared by the core/tokenizer_*.c files (one job each):
 *   tokenizer_json.c      tokenizer.json -> these structs
 *   tokenizer_normalize.c normalizers (utf8proc)
 *   tokenizer_pretok.c    pre-tokenizers (PCRE2 regexes)
 *   tokenizer_bpe.c       the BPE model, tokenizer_wordpiece.c the WordPiece model
 *   tokenizer_added.c     added/special tokens split out of the text
 *   tokenizer_decode.c    decoders
 *   tokenizer.c           the encode pipeline, post-processors and the public API */
#ifndef HK_CORE_TOKENIZER_IMPL_H
#define HK_CORE_TOKENIZER_IMPL_H

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hookformer.h"
#include "tok_map.h"

/* ---- growable buffers ---------------------------------------------------------------- */

typedef struct {
    char *p;
    size_t len, cap;
    bool oom; /* an append failed; the contents are incomplete */
} hk_sbuf;

void hk_sbuf_put(hk_sbuf *b, const char *s, size_t n);
void hk_sbuf_putc(hk_sbuf *b, char c);
void hk_sbuf_put_cp(hk_sbuf *b, uint32_t cp);
void hk_sbuf_free(hk_sbuf *b);

/* Text cut into pieces. A piece either holds text (added == -1) or stands for an added token
 * already matched (added = its id; its text is kept for decoding-free display only). */
typedef struct {
    size_t off, len; /* into the owning list's text */
    int32_t added;
    bool at_start;   /* the piece starts at offset 0 of the original text (Metaspace "first") */
} hk_piece;

typedef struct {
    hk_sbuf text;
    hk_piece *p;
    size_t n, cap;
    bool oom;
} hk_pieces;

void hk_pieces_clear(hk_pieces *l);
void hk_pieces_free(hk_pieces *l);
/* Append a piece whose text is s[0, n) (copied). Empty text pieces are dropped, as Hugging
 * Face drops empty splits. */
void hk_pieces_push(hk_pieces *l, const char *s, size_t n, int32_t added, bool at_start);

/* Make a piece of the text appended since offset off (already in l->text). */
void hk_pieces_push_tail(hk_pieces *l, size_t off, int32_t added, bool at_start);

typedef struct {
    int32_t *v;
    size_t n, cap;
    bool oom;
} hk_ids;

void hk_ids_push(hk_ids *ids, int32_t id);

/* ---- components -------------------------------------------------------------------- */

typedef enum {
    HK_SPLIT_REMOVED,
    HK_SPLIT_ISOLATED,
    HK_SPLIT_MERGED_PREV,
    HK_SPLIT_MERGED_NEXT,
    HK_SPLIT_CONTIGUOUS
} hk_split_behavior;

/* A pattern: a literal string or a compiled PCRE2 regex. */
typedef struct {
    char *lit;
    size_t lit_len;
    pcre2_code *re;
} hk_pattern;

typedef enum {
    HK_NORM_SEQUENCE,
    HK_NORM_NFC,
    HK_NORM_NFD,
    HK_NORM_NFKC,
    HK_NORM_NFKD,
    HK_NORM_LOWERCASE,
    HK_NORM_STRIP_ACCENTS,
    HK_NORM_BERT,
    HK_NORM_PREPEND,
    HK_NORM_REPLACE,
    HK_NORM_STRIP
} hk_tok_norm_kind;

typedef struct hk_normalizer {
    hk_tok_norm_kind kind;
    bool clean_text, chinese_chars, strip_accents, lowercase; /* BERT */
    bool left, right;                                          /* Strip */
    hk_pattern pattern;                                        /* Replace */
    char *content;                                             /* Replace, Prepend */
    size_t content_len;
    struct hk_normalizer *items; /* Sequence */
    size_t n_items;
} hk_normalizer;

typedef enum {
    HK_PRE_SEQUENCE,
    HK_PRE_BYTE_LEVEL,
    HK_PRE_SPLIT,
    HK_PRE_DIGITS,
    HK_PRE_METASPACE,
    HK_PRE_WHITESPACE,
    HK_PRE_WHITESPACE_SPLIT,
    HK_PRE_BERT,
    HK_PRE_PUNCTUATION
} hk_pre_kind;

typedef enum { HK_PREPEND_ALWAYS, HK_PREPEND_FIRST, HK_PREPEND_NEVER } hk_prepend_scheme;

typedef struct hk_pretok {
    hk_pre_kind kind;
    bool add_prefix_space, use_regex;  /* ByteLevel */
    hk_pattern pattern;                /* Split, ByteLevel's regex, Whitespace */
    hk_split_behavior behavior;        /* Split, Punctuation */
    bool invert;                       /* Split */
    bool individual_digits;            /* Digits */
    uint32_t replacement;              /* Metaspace */
    hk_prepend_scheme prepend;         /* Metaspace */
    bool split;                        /* Metaspace */
    struct hk_pretok *items;           /* Sequence */
    size_t n_items;
} hk_pretok;

typedef enum {
    HK_DEC_SEQUENCE,
    HK_DEC_BYTE_LEVEL,
    HK_DEC_METASPACE,
    HK_DEC_WORDPIECE,
    HK_DEC_BYTE_FALLBACK,
    HK_DEC_FUSE,
    HK_DEC_STRIP,
    HK_DEC_REPLACE,
    HK_DEC_BPE
} hk_dec_kind;

typedef struct hk_decoder {
    hk_dec_kind kind;
    uint32_t replacement;       /* Metaspace */
    hk_prepend_scheme prepend;  /* Metaspace */
    char *prefix;               /* WordPiece prefix, BPEDecoder suffix, Strip content */
    size_t prefix_len;
    bool cleanup;               /* WordPiece */
    int64_t start, stop;        /* Strip */
    hk_pattern pattern;         /* Replace */
    char *content;              /* Replace */
    size_t content_len;
    struct hk_decoder *items;   /* Sequence */
    size_t n_items;
} hk_decoder;

/* Post-processing of a single sequence: ids before and after it. */
typedef struct {
    int32_t *pre, *post;
    size_t n_pre, n_post;
} hk_postproc;

typedef enum { HK_MODEL_BPE, HK_MODEL_WORDPIECE } hk_model_kind;

typedef struct {
    hk_model_kind kind;
    hk_strmap vocab;      /* token string -> id */
    hk_u64map merges;     /* (left << 32 | right) -> (rank << 32 | merged id) */
    int32_t unk_id;       /* -1 none */
    bool fuse_unk, byte_fallback, ignore_merges;
    char *cont_prefix;    /* BPE continuing_subword_prefix / WordPiece "##" */
    size_t cont_prefix_len;
    char *end_suffix;     /* BPE end_of_word_suffix */
    size_t end_suffix_len;
    int64_t max_input_chars; /* WordPiece */
    int32_t byte_ids[256]; /* byte fallback "<0xAB>" ids (-1 absent) */
} hk_tok_model;

typedef struct {
    char *content;
    size_t len;
    int32_t id;
    bool special, single_word, lstrip, rstrip, normalized;
} hk_added_token;

/* Added tokens matched in one pass (leftmost-longest), for one of the two sets. */
typedef struct {
    size_t *idx;   /* indexes into the added token array, grouped by first byte */
    size_t n;
    char **text;   /* the text matched (normalized content for the normalized set) */
    size_t *len;
    uint32_t first[256]; /* first[c]: start of the tokens beginning with byte c in idx order */
    uint32_t count[256];
} hk_added_set;

struct hk_tokenizer {
    char *origin;
    hk_tok_model model;
    hk_normalizer *normalizer;   /* NULL: none */
    hk_pretok *pretok;           /* NULL: none */
    hk_decoder *decoder;         /* NULL: tokens joined with " " */
    hk_postproc post;
    bool has_post;
    hk_added_token *added;
    size_t n_added;
    hk_added_set raw_set, norm_set;
    char **id_to_str; /* [vocab_size] vocabulary/added token strings (NULL holes) */
    size_t *id_len;
    bool *id_special; /* [vocab_size] added special tokens */
    int64_t vocab_size;
    int32_t special[4]; /* hk_special_token -> id */
};

/* ---- per-component entry points ---------------------------------------------------- */

/* Normalize s[0, n) into out (cleared first). false on allocation failure. */
bool hk_normalize(const hk_normalizer *nz, const char *s, size_t n, hk_sbuf *out);
/* Pre-tokenize the text pieces of *in into *out (cleared first); added pieces pass through.
 * match_data: scratch for PCRE2 (NULL: allocated per call). */
bool hk_pretokenize(const hk_pretok *pt, const hk_pieces *in, hk_pieces *out,
                    pcre2_match_data *md);
/* Model: ids of one pre-tokenized word. */
bool hk_bpe_tokenize(const hk_tok_model *m, const char *s, size_t n, hk_ids *out);
bool hk_wordpiece_tokenize(const hk_tok_model *m, const char *s, size_t n, hk_ids *out);
/* Split text at the added tokens of `set` (leftmost-longest, honouring single_word, lstrip,
 * rstrip), appending pieces to out; at_start applies to the first piece if it starts at 0. */
void hk_added_split(const hk_tokenizer *t, const hk_added_set *set, const char *s, size_t n,
                    bool at_start, hk_pieces *out);
/* Decode token strings with the decoder chain into out. raw: keep bytes that are not valid
 * UTF-8 instead of replacing them (display). */
bool hk_decode_tokens(const hk_decoder *d, char **toks, size_t *lens, size_t n, bool raw,
                      hk_sbuf *out);

/* Free a tokenizer, complete or half-built. */
void hk_tokenizer_destroy(hk_tokenizer *t);
/* Free a component tree (the struct itself too). */
void hk_normalizer_free(hk_normalizer *nz);
void hk_pretok_free(hk_pretok *pt);
void hk_decoder_free(hk_decoder *d);
void hk_pattern_free(hk_pattern *p);
/* Find the next match of p in s[pos, n): true and [*ms, *me) when found. A PCRE2 failure
 * other than "no match" (a match limit, say) also returns false and leaves its code in
 * hk_tok_regex_error (this thread's), which encode checks. */
extern _Thread_local int hk_tok_regex_error;
bool hk_pattern_next(const hk_pattern *p, const char *s, size_t n, size_t pos,
                     pcre2_match_data *md, size_t *ms, size_t *me);

/* GPT-2's byte -> character table of the ByteLevel pre-tokenizer/decoder: the UTF-8 of the
 * character standing for each byte, and its length. */
void hk_byte_level_tables(const char (**chars)[3], const uint8_t **lens);

/* Character classes, following Rust's char methods and the unicode_categories crate as
 * Hugging Face uses them. */
bool hk_uc_is_whitespace(uint32_t cp);   /* char::is_whitespace (White_Space) */
bool hk_uc_is_punctuation(uint32_t cp);  /* ascii punctuation or a P* category */
bool hk_uc_is_numeric(uint32_t cp);      /* Nd, Nl, No */
bool hk_uc_is_alnum(uint32_t cp);        /* char::is_alphanumeric */

#endif
