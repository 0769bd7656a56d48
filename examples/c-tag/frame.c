/* Writing the frames of the contract (plugin/abi/src/lib.rs, "Result frame
 * layout" and "Init frame layout"): little-endian u32 words, tables, then
 * a payload area the tables point into. Every buffer lives in the guest's
 * linear memory and is reused; the host copies what it keeps before the
 * next call. When memory runs out the answer is an error frame, which the
 * host counts as a failed call and passes the batch on untouched. */
#include <stdlib.h>
#include <string.h>

#include "rulebox.h"

/* Said when not even an error frame can be allocated: a static one. */
static const uint8_t OUT_OF_MEMORY[16 + 13] = {
    1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 13, 0, 0, 0,
    'o', 'u', 't', ' ', 'o', 'f', ' ', 'm', 'e', 'm', 'o', 'r', 'y',
};

int buf_reserve(struct buf *b, size_t need) {
    if (need <= b->cap) {
        return 1;
    }
    size_t cap = b->cap ? b->cap : 256;
    while (cap < need) {
        if (cap > SIZE_MAX / 2) {
            return 0;
        }
        cap *= 2;
    }
    uint8_t *data = realloc(b->data, cap);
    if (!data) {
        return 0;
    }
    b->data = data;
    b->cap = cap;
    return 1;
}

int buf_put(struct buf *b, const void *bytes, size_t n) {
    if (n > SIZE_MAX - b->len || !buf_reserve(b, b->len + n)) {
        return 0;
    }
    if (n) {
        memcpy(b->data + b->len, bytes, n);
    }
    b->len += n;
    return 1;
}

int buf_u32(struct buf *b, uint32_t v) {
    uint8_t le[4] = {(uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24)};
    return buf_put(b, le, 4);
}

void frame_clear(struct frame *f) {
    f->events.len = f->records.len = f->payload.len = 0;
    f->n_events = f->n_records = 0;
    f->failed = 0;
}

uint32_t frame_payload(struct frame *f, const void *bytes, size_t n) {
    uint32_t off = (uint32_t)f->payload.len;
    f->failed |= !buf_put(&f->payload, bytes, n);
    return off;
}

void frame_event(struct frame *f, uint8_t action, uint8_t reason, uint16_t output,
                 uint32_t start, uint32_t end, uint32_t payload_off, uint32_t payload_len) {
    uint8_t head[4] = {action, reason, (uint8_t)output, (uint8_t)(output >> 8)};
    int ok = buf_put(&f->events, head, 4) && buf_u32(&f->events, start) &&
             buf_u32(&f->events, end) && buf_u32(&f->events, payload_off) &&
             buf_u32(&f->events, payload_len);
    f->failed |= !ok;
    f->n_events++;
}

void frame_record(struct frame *f, uint32_t output, const void *line, size_t n) {
    uint32_t off = frame_payload(f, line, n);
    int ok = buf_u32(&f->records, output) && buf_u32(&f->records, off) &&
             buf_u32(&f->records, (uint32_t)n);
    f->failed |= !ok;
    f->n_records++;
}

int64_t frame_finish(struct frame *f) {
    if (f->failed) {
        return frame_error(f, "out of memory");
    }
    struct buf *o = &f->out;
    o->len = 0;
    int ok = buf_u32(o, 0) && buf_u32(o, f->n_events) && buf_u32(o, f->n_records) &&
             buf_u32(o, (uint32_t)f->payload.len) &&
             buf_put(o, f->events.data, f->events.len) &&
             buf_put(o, f->records.data, f->records.len) &&
             buf_put(o, f->payload.data, f->payload.len);
    if (!ok) {
        return frame_error(f, "out of memory");
    }
    return rulebox_pack(o->data, o->len);
}

int64_t frame_error(struct frame *f, const char *message) {
    struct buf *o = &f->out;
    size_t n = strlen(message);
    o->len = 0;
    if (!(buf_u32(o, 1) && buf_u32(o, 0) && buf_u32(o, 0) && buf_u32(o, (uint32_t)n) &&
          buf_put(o, message, n))) {
        return rulebox_pack(OUT_OF_MEMORY, sizeof OUT_OF_MEMORY);
    }
    return rulebox_pack(o->data, o->len);
}

/* u32 length, then the bytes: how the init frame writes a name. */
static int put_name(struct buf *out, const char *name) {
    size_t n = strlen(name);
    return buf_u32(out, (uint32_t)n) && buf_put(out, name, n);
}

int64_t init_ok(struct buf *out, const char *const *outputs, size_t n_outputs, uint32_t flags,
                const char *const *keys, size_t n_keys) {
    out->len = 0;
    int ok = buf_u32(out, 0) && buf_u32(out, (uint32_t)n_outputs);
    for (size_t i = 0; ok && i < n_outputs; i++) {
        ok = put_name(out, outputs[i]);
    }
    ok = ok && buf_u32(out, flags);
    if (flags & INIT_OBJECT_KEYS) {
        ok = ok && buf_u32(out, (uint32_t)n_keys);
        for (size_t i = 0; ok && i < n_keys; i++) {
            ok = put_name(out, keys[i]);
        }
    }
    return ok ? rulebox_pack(out->data, out->len) : init_error(out, "out of memory");
}

int64_t init_error(struct buf *out, const char *message) {
    size_t n = strlen(message);
    out->len = 0;
    if (!(buf_u32(out, 1) && buf_u32(out, (uint32_t)n) && buf_put(out, message, n))) {
        /* The init frame's error layout: status 1, length, message. */
        static const uint8_t oom[8 + 13] = {1, 0, 0, 0, 13, 0, 0, 0, 'o', 'u', 't', ' ', 'o',
                                            'f', ' ', 'm', 'e', 'm', 'o', 'r', 'y'};
        return rulebox_pack(oom, sizeof oom);
    }
    return rulebox_pack(out->data, out->len);
}
