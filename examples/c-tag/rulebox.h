/* The rulebox contract (plugin/abi/src/lib.rs) as a C author sees it: the
 * numbers of the wire format, the attributes that name an export or the
 * host's import, and the frame writer in frame.c. Nothing here comes from
 * the Rust SDK; every value is one the contract documents. */
#ifndef RULEBOX_H
#define RULEBOX_H

#include <stddef.h>
#include <stdint.h>

/* rulebox_abi_version() must answer this (ABI_VERSION). */
#define RULEBOX_ABI_VERSION 1

/* An exported function of the contract, under its exact name. */
#define RULEBOX_EXPORT(name) __attribute__((export_name(name)))

/* The host's one function: a log line (level 1 error .. 4 debug). */
__attribute__((import_module("rulebox"), import_name("log")))
void rulebox_log(int32_t level, const char *ptr, int32_t len);

enum { RULEBOX_LOG_ERROR = 1, RULEBOX_LOG_WARN = 2, RULEBOX_LOG_INFO = 3, RULEBOX_LOG_DEBUG = 4 };

/* An event result: what happens to the event ... */
enum { ACTION_PASS = 0, ACTION_EDIT = 1, ACTION_DROP = 2 };
/* ... and why the rule had nothing to say about it (for the host's counters). */
enum { REASON_OK = 0, REASON_MALFORMED = 1, REASON_NOT_OBJECT = 2, REASON_OTHER = 3 };

/* Init-frame flags (the u32 after the output names). */
#define INIT_READS_OBJECTS 1u
#define INIT_OBJECT_KEYS 2u
#define INIT_OBJECT_PATHS 4u
#define INIT_PARALLEL 8u

/* The objects index after the batch (plugin/abi/src/frame/index.rs): per
 * event a 20-byte entry, then its members, 20 bytes each. */
#define INDEX_EVENT_LEN 20u
#define INDEX_MEMBER_LEN 20u
/* The entry's status word: the low byte says what the event is ... */
enum { INDEX_OBJECT = 0, INDEX_MALFORMED = 1, INDEX_TOO_DEEP = 2, INDEX_NOT_OBJECT = 3 };
/* ... and these bits say more about an object. */
#define INDEX_ESCAPED_KEYS (1u << 8)
#define INDEX_HAS_MEMBERS (1u << 9)

/* A little-endian u32 at any alignment. */
static inline uint32_t rulebox_u32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* What a frame-returning export answers: pointer (upper 32 bits) and length. */
static inline int64_t rulebox_pack(const void *ptr, size_t len) {
    return (int64_t)(((uint64_t)(uintptr_t)ptr << 32) | (uint32_t)len);
}

/* A growable byte buffer in linear memory (the guest owns every buffer). */
struct buf {
    uint8_t *data;
    size_t len, cap;
};

/* Room for `need` bytes in all; 0 when memory runs out. */
int buf_reserve(struct buf *b, size_t need);
/* Appends bytes (or a little-endian u32); 0 when memory runs out. */
int buf_put(struct buf *b, const void *bytes, size_t n);
int buf_u32(struct buf *b, uint32_t v);

/* A result frame being written: tables and payload kept apart, joined by
 * frame_finish. Buffers are kept from one call to the next. */
struct frame {
    struct buf events, records, payload, out;
    uint32_t n_events, n_records;
    int failed; /* memory ran out while writing: finish answers an error */
};

void frame_clear(struct frame *f);
/* Appends `n` bytes to the payload area; their offset in it. */
uint32_t frame_payload(struct frame *f, const void *bytes, size_t n);
void frame_event(struct frame *f, uint8_t action, uint8_t reason, uint16_t output,
                 uint32_t start, uint32_t end, uint32_t payload_off, uint32_t payload_len);
void frame_record(struct frame *f, uint32_t output, const void *line, size_t n);
/* The frame, packed; an error frame when memory ran out. */
int64_t frame_finish(struct frame *f);
/* An error frame carrying `message`, packed. */
int64_t frame_error(struct frame *f, const char *message);

/* An init frame: ok with the declared outputs, flags and declared keys. */
int64_t init_ok(struct buf *out, const char *const *outputs, size_t n_outputs, uint32_t flags,
                const char *const *keys, size_t n_keys);
/* An init frame refusing the configuration with `message`. */
int64_t init_error(struct buf *out, const char *message);

#endif
