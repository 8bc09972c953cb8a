/*
 * sentencepiece.c — reads SentencePiece's tokenizer.model, a protobuf
 * ModelProto, far enough to import the vocabulary:
 *
 *   ModelProto     { repeated SentencePiece pieces = 1; ...other fields }
 *   SentencePiece  { string piece = 1; float score = 2; Type type = 3; }
 *   Type           NORMAL 1, UNKNOWN 2, CONTROL 3, USER_DEFINED 4,
 *                  UNUSED 5, BYTE 6   (the same numbers as GGUF's)
 *
 * Protobuf wire format: each field is a varint key (field number << 3 |
 * wire type) followed by a varint (type 0), 8 bytes (1), a varint length and
 * that many bytes (2) or 4 bytes (5). Fields may come in any order, a field
 * seen twice keeps its last value, and absent fields take their defaults
 * (score 0, type NORMAL).
 *
 * A small reader of our own, not a protobuf library: a cursor over the
 * bytes whose every read is bounds-checked; varints longer than 10 bytes,
 * lengths past the end of the enclosing message, group wire types (3, 4) and
 * the reserved ones (6, 7) are errors; unknown fields are skipped by their
 * wire type. Two passes: the first validates and counts pieces and text
 * bytes, the second fills one block, so a hostile count never drives an
 * allocation larger than the input.
 */
#include "formats/sentencepiece.h"
#include "formats/json.h"

#include <string.h>

#define SP_MAX_FILE ((size_t)256 << 20)
#define SP_MAX_PIECE (1u << 16) /* bytes of one piece */

void orion__vocab_free(orion_vocab *v) {
    if (!v) return;
    orion__free(v->tokens);
    orion__free(v->scores);
    orion__free(v->types);
    orion__free(v->text);
    orion__free(v);
}

/* ---- wire format ------------------------------------------------------------- */

typedef struct pb {
    const uint8_t *p;
    size_t         end; /* end of the current message */
    size_t         pos;
    const char    *label;
} pb;

static orion_status read_varint(pb *r, uint64_t *v, const char *what) {
    uint64_t x = 0;
    size_t at = r->pos;
    for (int i = 0; i < 10; i++) {
        if (r->pos >= r->end)
            return orion__fail(ORION_ERR_FORMAT, "%s: truncated %s (varint) at byte %zu", r->label, what, at);
        uint8_t b = r->p[r->pos++];
        if (i == 9 && b > 1)
            return orion__fail(ORION_ERR_FORMAT, "%s: %s (varint) at byte %zu overflows 64 bits", r->label, what,
                               at);
        x |= (uint64_t)(b & 0x7f) << (7 * i);
        if (!(b & 0x80)) {
            *v = x;
            return ORION_OK;
        }
    }
    return orion__fail(ORION_ERR_FORMAT, "%s: %s (varint) at byte %zu is longer than 10 bytes", r->label, what, at);
}

/* Reads a length prefix and checks the bytes are inside the message. */
static orion_status read_length(pb *r, size_t *len, const char *what) {
    size_t at = r->pos;
    uint64_t n = 0;
    orion_status st = read_varint(r, &n, what);
    if (st != ORION_OK) return st;
    if (n > r->end - r->pos)
        return orion__fail(ORION_ERR_FORMAT, "%s: %s at byte %zu has length %llu but only %zu bytes are left",
                           r->label, what, at, (unsigned long long)n, r->end - r->pos);
    *len = (size_t)n;
    return ORION_OK;
}

/* Reads a field key: field number and wire type. */
static orion_status read_key(pb *r, uint32_t *field, uint32_t *wire) {
    size_t at = r->pos;
    uint64_t key = 0;
    orion_status st = read_varint(r, &key, "field key");
    if (st != ORION_OK) return st;
    if ((key >> 3) == 0 || (key >> 3) > 536870911u)
        return orion__fail(ORION_ERR_FORMAT, "%s: field key at byte %zu has field number %llu (1 to 2^29-1 allowed)",
                           r->label, at, (unsigned long long)(key >> 3));
    *field = (uint32_t)(key >> 3);
    *wire = (uint32_t)(key & 7);
    return ORION_OK;
}

/* Skips the value of a field of wire type `wire`. */
static orion_status skip_value(pb *r, uint32_t field, uint32_t wire) {
    uint64_t v;
    size_t len = 0, at = r->pos;
    switch (wire) {
    case 0: return read_varint(r, &v, "field value");
    case 1: len = 8; break;
    case 5: len = 4; break;
    case 2: {
        orion_status st = read_length(r, &len, "field");
        if (st != ORION_OK) return st;
        break;
    }
    default:
        return orion__fail(ORION_ERR_FORMAT, "%s: field %u at byte %zu has wire type %u, which is %s", r->label,
                           field, at, wire, wire == 3 || wire == 4 ? "a (deprecated) group: not supported" : "invalid");
    }
    if (len > r->end - r->pos)
        return orion__fail(ORION_ERR_FORMAT, "%s: truncated field %u at byte %zu (%zu bytes, %zu left)", r->label,
                           field, at, len, r->end - r->pos);
    r->pos += len;
    return ORION_OK;
}

static orion_status wrong_wire(const pb *r, int32_t index, uint32_t field, uint32_t wire, uint32_t want) {
    return orion__fail(ORION_ERR_FORMAT, "%s: piece %d: field %u at byte %zu has wire type %u, expected %u",
                       r->label, index, field, r->pos, wire, want);
}

/* ---- pieces ------------------------------------------------------------------------ */

typedef struct piece {
    const uint8_t *text;
    size_t         len;
    float          score;
    int32_t        type;
} piece;

/* Decodes one SentencePiece message occupying [r->pos, end). */
static orion_status parse_piece(pb *outer, size_t end, int32_t index, piece *out) {
    pb r = {outer->p, end, outer->pos, outer->label};
    size_t start = r.pos;
    out->text = r.p + r.pos;
    out->len = 0;
    out->score = 0.0f;
    out->type = ORION_SP_NORMAL;
    orion_status st;
    while (r.pos < r.end) {
        uint32_t field = 0, wire = 0;
        if ((st = read_key(&r, &field, &wire)) != ORION_OK) return st;
        if (field == 1) {
            if (wire != 2) return wrong_wire(&r, index, field, wire, 2);
            size_t len = 0;
            if ((st = read_length(&r, &len, "piece text")) != ORION_OK) return st;
            if (len > SP_MAX_PIECE)
                return orion__fail(ORION_ERR_FORMAT, "%s: piece %d at byte %zu: text of %zu bytes is over %u",
                                   r.label, index, start, len, SP_MAX_PIECE);
            if (memchr(r.p + r.pos, '\0', len))
                return orion__fail(ORION_ERR_FORMAT, "%s: piece %d at byte %zu: text contains a NUL byte", r.label,
                                   index, start);
            out->text = r.p + r.pos;
            out->len = len;
            r.pos += len;
        } else if (field == 2) {
            if (wire != 5) return wrong_wire(&r, index, field, wire, 5);
            if (r.end - r.pos < 4)
                return orion__fail(ORION_ERR_FORMAT, "%s: piece %d: truncated score at byte %zu", r.label, index,
                                   r.pos);
            memcpy(&out->score, r.p + r.pos, 4);
            r.pos += 4;
        } else if (field == 3) {
            if (wire != 0) return wrong_wire(&r, index, field, wire, 0);
            uint64_t t;
            size_t at = r.pos;
            if ((st = read_varint(&r, &t, "piece type")) != ORION_OK) return st;
            if (t < ORION_SP_NORMAL || t > ORION_SP_BYTE)
                return orion__fail(ORION_ERR_FORMAT,
                                   "%s: piece %d: type %llu at byte %zu is not a SentencePiece type (1 to 6)", r.label,
                                   index, (unsigned long long)t, at);
            out->type = (int32_t)t;
        } else {
            if ((st = skip_value(&r, field, wire)) != ORION_OK) return st;
        }
    }
    outer->pos = r.pos;
    return ORION_OK;
}

/* Walks the ModelProto. With v == NULL it only validates and counts;
 * otherwise it fills v (sized by the counting pass). */
static orion_status walk(const uint8_t *data, size_t size, const char *label, orion_vocab *v, int32_t *n_pieces,
                         size_t *text_bytes) {
    pb r = {data, size, 0, label};
    int32_t n = 0;
    size_t bytes = 0;
    orion_status st;
    while (r.pos < r.end) {
        uint32_t field = 0, wire = 0;
        if ((st = read_key(&r, &field, &wire)) != ORION_OK) return st;
        if (field != 1) {
            if ((st = skip_value(&r, field, wire)) != ORION_OK) return st;
            continue;
        }
        if (wire != 2)
            return orion__fail(ORION_ERR_FORMAT, "%s: field 1 (pieces) at byte %zu has wire type %u, expected 2",
                               label, r.pos, wire);
        size_t len = 0;
        if ((st = read_length(&r, &len, "piece")) != ORION_OK) return st;
        if (n == INT32_MAX)
            return orion__fail(ORION_ERR_FORMAT, "%s: more than %d pieces", label, INT32_MAX);
        piece pc;
        if ((st = parse_piece(&r, r.pos + len, n, &pc)) != ORION_OK) return st;
        if (v) {
            char *s = v->text + bytes;
            memcpy(s, pc.text, pc.len);
            s[pc.len] = '\0';
            v->tokens[n] = s;
            v->scores[n] = pc.score;
            v->types[n] = pc.type;
        }
        bytes += pc.len + 1;
        n++;
    }
    *n_pieces = n;
    *text_bytes = bytes;
    return ORION_OK;
}

orion_status orion__sentencepiece_parse(const void *data, size_t size, const char *label, orion_vocab **out) {
    *out = NULL;
    if (!label) label = "<memory>";
    if (!data && size) return orion__fail(ORION_ERR_INVALID_ARG, "%s: no data", label);
    int32_t n = 0;
    size_t bytes = 0;
    orion_status st = walk(data, size, label, NULL, &n, &bytes);
    if (st != ORION_OK) return st;
    if (n == 0) return orion__fail(ORION_ERR_FORMAT, "%s: no pieces: not a SentencePiece model", label);
    orion_vocab *v = orion__calloc(1, sizeof *v);
    if (!v) return orion__fail(ORION_ERR_NOMEM, "%s: cannot allocate a vocabulary", label);
    v->tokens = orion__calloc((size_t)n, sizeof *v->tokens);
    v->scores = orion__calloc((size_t)n, sizeof *v->scores);
    v->types = orion__calloc((size_t)n, sizeof *v->types);
    v->text = orion__malloc(bytes);
    if (!v->tokens || !v->scores || !v->types || !v->text) {
        orion__vocab_free(v);
        return orion__fail(ORION_ERR_NOMEM, "%s: cannot allocate a vocabulary of %d pieces", label, n);
    }
    int32_t n2;
    size_t bytes2;
    if ((st = walk(data, size, label, v, &n2, &bytes2)) != ORION_OK || n2 != n || bytes2 != bytes) {
        orion__vocab_free(v);
        return st != ORION_OK ? st : orion__fail(ORION_ERR_INTERNAL, "%s: second pass disagrees", label);
    }
    v->n = n;
    *out = v;
    return ORION_OK;
}

orion_status orion__sentencepiece_load(const char *path, orion_vocab **out) {
    *out = NULL;
    char *buf = NULL;
    size_t size = 0;
    orion_status st = orion__read_small_file(path, SP_MAX_FILE, &buf, &size);
    if (st != ORION_OK) return st;
    st = orion__sentencepiece_parse(buf, size, path, out);
    orion__free(buf);
    return st;
}
