/* c-tag: a rulebox rule in C, written against the contract in
 * plugin/abi/src/lib.rs alone. It tags every JSON object event with a
 * member `"c_tag":<tag>` (replacing the value of a `c_tag` member the event
 * already has), passes on every other line untouched with the reason the
 * host counts (malformed, not an object), and at the final flush emits one
 * record on its `counts` output with what it saw.
 *
 * It reads events as objects: the host scans each one natively and hands
 * over, after the batch, an objects index listing only the members whose
 * key the rule declared (`c_tag`) and where the object closes, so the rule
 * never parses an event itself.
 *
 * Its manifest is manifest.json, put into the module's `rulebox.manifest`
 * custom section by manifest.s. It uses no stdio, so the module imports
 * nothing from WASI; its one import is the host's log. */
#include <string.h>

#include "config.h"
#include "rulebox.h"

/* The declared outputs: id 1 is the first (0 is the default output). */
static const char *const OUTPUTS[] = {"counts"};
#define COUNTS_OUTPUT 1
/* The one top-level key the rule reads: the host lists no other member. */
static const char *const KEYS[] = {"c_tag"};
#define MEMBER_PREFIX ",\"c_tag\":"

static struct buf input;    /* rulebox_reserve's buffer */
static struct buf init_out; /* the init frame */
static struct frame frame;  /* every result frame */
static struct config config;

RULEBOX_EXPORT("rulebox_abi_version") int32_t rulebox_abi_version(void) {
    return RULEBOX_ABI_VERSION;
}

/* One buffer, grown as needed and kept: valid until the next call. At
 * least one byte, so the pointer is never 0 (which means "no buffer"). */
RULEBOX_EXPORT("rulebox_reserve") int32_t rulebox_reserve(int32_t len) {
    size_t need = (uint32_t)len ? (uint32_t)len : 1;
    return buf_reserve(&input, need) ? (int32_t)(uintptr_t)input.data : 0;
}

RULEBOX_EXPORT("rulebox_init") int64_t rulebox_init(int32_t ptr, int32_t len) {
    const char *why = config_read((const uint8_t *)(uintptr_t)ptr, (uint32_t)len, &config);
    if (why) {
        return init_error(&init_out, why);
    }
    static const char said[] = "c-tag: tagging events with c_tag=";
    char line[sizeof said + CONFIG_MAX_TAG + 2];
    memcpy(line, said, sizeof said - 1);
    memcpy(line + sizeof said - 1, config.tag, config.tag_len);
    rulebox_log(RULEBOX_LOG_INFO, line, (int32_t)(sizeof said - 1 + config.tag_len));
    return init_ok(&init_out, OUTPUTS, 1, INIT_READS_OBJECTS | INIT_OBJECT_KEYS, KEYS, 1);
}

/* Required by the contract, but the host calls rulebox_process_objects
 * instead for a rule whose init frame sets INIT_READS_OBJECTS. */
RULEBOX_EXPORT("rulebox_process")
int64_t rulebox_process(int32_t ptr, int32_t len, int32_t count, int64_t now_ms) {
    (void)ptr, (void)len, (void)count, (void)now_ms;
    frame_clear(&frame);
    return frame_error(&frame, "c-tag reads objects: call rulebox_process_objects");
}

/* Counts of what the rule saw, for the counts record. */
struct counts {
    uint64_t events, tagged, replaced, malformed, not_object;
};
static struct counts seen;

/* Where one event's c_tag goes: after the last member, in an empty object,
 * or over the value of the c_tag member it has. `skip`: how much of the
 * payload `,"c_tag":TAG` the splice leaves out (the comma in an empty
 * object; all but TAG over a value). Offsets are in the event. */
struct splice {
    uint32_t start, end, skip;
};

/* The splice for `event` from its index entry (its members follow it), or
 * 0 if the entry does not fit the event: the index is checked, not trusted. */
static int plan_splice(const uint8_t *event, uint32_t len, const uint8_t *entry,
                       struct splice *s) {
    uint32_t status = rulebox_u32(entry + 8), close = rulebox_u32(entry + 12);
    uint32_t n = rulebox_u32(entry + 16);
    if (close >= len || event[close] != '}') {
        return 0;
    }
    *s = (struct splice){close, close, (status & INDEX_HAS_MEMBERS) ? 0 : 1};
    const uint8_t *m = entry + INDEX_EVENT_LEN;
    for (uint32_t i = 0; i < n; i++, m += INDEX_MEMBER_LEN) {
        uint32_t k0 = rulebox_u32(m), k1 = rulebox_u32(m + 4);
        uint32_t v0 = rulebox_u32(m + 8), v1 = rulebox_u32(m + 12);
        if (k0 > k1 || k1 > len || v0 > v1 || v1 > len) {
            return 0;
        }
        /* The raw key, between its quotes: a key written with escapes
         * (`c\u005ftag`) is listed too, and is not this one. */
        if (k1 - k0 == 5 && memcmp(event + k0, "c_tag", 5) == 0) {
            *s = (struct splice){v0, v1, sizeof MEMBER_PREFIX - 1};
        }
    }
    return 1;
}

/* One event's result, from its index entry; counted in `c`. */
static int answer(const uint8_t *event, uint32_t len, const uint8_t *entry, struct counts *c) {
    uint32_t status = rulebox_u32(entry + 8);
    uint32_t whole = (uint32_t)(sizeof MEMBER_PREFIX - 1 + config.tag_len);
    struct splice s;
    c->events++;
    switch (status & 0xff) {
    case INDEX_OBJECT:
        if (!plan_splice(event, len, entry, &s)) {
            return 0;
        }
        c->tagged++;
        c->replaced += s.skip == sizeof MEMBER_PREFIX - 1;
        frame_event(&frame, ACTION_EDIT, REASON_OK, 0, s.start, s.end, s.skip, whole - s.skip);
        return 1;
    case INDEX_NOT_OBJECT:
        c->not_object++;
        frame_event(&frame, ACTION_PASS, REASON_NOT_OBJECT, 0, 0, 0, 0, 0);
        return 1;
    default: /* malformed, or nested deeper than the host scans */
        c->malformed++;
        frame_event(&frame, ACTION_PASS, REASON_MALFORMED, 0, 0, 0, 0, 0);
        return 1;
    }
}

/* The batch (`batch_len` bytes, `count` lines) and its objects index
 * (`index_len` bytes, right after it) in; one result per event out. */
RULEBOX_EXPORT("rulebox_process_objects")
int64_t rulebox_process_objects(int32_t ptr, int32_t batch_len, int32_t count, int32_t index_len,
                                int64_t now_ms) {
    (void)now_ms;
    const uint8_t *batch = (const uint8_t *)(uintptr_t)ptr;
    const uint8_t *at = batch + (uint32_t)batch_len, *end = at + (uint32_t)index_len;
    struct counts c = {0};
    frame_clear(&frame);
    /* One payload for the whole batch; each splice takes a part of it. */
    frame_payload(&frame, MEMBER_PREFIX, sizeof MEMBER_PREFIX - 1);
    frame_payload(&frame, config.tag, config.tag_len);
    for (int32_t i = 0; i < count; i++) {
        size_t left = (size_t)(end - at);
        if (left < INDEX_EVENT_LEN) {
            return frame_error(&frame, "c-tag: the objects index is shorter than the batch");
        }
        uint32_t start = rulebox_u32(at), len = rulebox_u32(at + 4), n = rulebox_u32(at + 16);
        int fits = n <= (left - INDEX_EVENT_LEN) / INDEX_MEMBER_LEN &&
                   start <= (uint32_t)batch_len && len <= (uint32_t)batch_len - start;
        if (!fits || !answer(batch + start, len, at, &c)) {
            return frame_error(&frame, "c-tag: an objects index entry outside its event");
        }
        at += INDEX_EVENT_LEN + (size_t)n * INDEX_MEMBER_LEN;
    }
    seen.events += c.events, seen.tagged += c.tagged, seen.replaced += c.replaced;
    seen.malformed += c.malformed, seen.not_object += c.not_object;
    return frame_finish(&frame);
}

RULEBOX_EXPORT("rulebox_tick") int64_t rulebox_tick(int64_t now_ms) {
    (void)now_ms;
    frame_clear(&frame);
    return frame_finish(&frame);
}

/* Writes `name` then `v` in decimal at `at`; the end. */
static char *put_count(char *at, const char *name, uint64_t v) {
    char digits[20];
    int n = 0;
    size_t len = strlen(name);
    memcpy(at, name, len);
    at += len;
    do {
        digits[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    while (n) {
        *at++ = digits[--n];
    }
    return at;
}

/* At end of input (or shutdown): the counts, once, on the counts output. */
RULEBOX_EXPORT("rulebox_flush") int64_t rulebox_flush(int64_t now_ms) {
    (void)now_ms;
    char line[160], *at = line;
    at = put_count(at, "{\"events\":", seen.events);
    at = put_count(at, ",\"tagged\":", seen.tagged);
    at = put_count(at, ",\"replaced\":", seen.replaced);
    at = put_count(at, ",\"malformed\":", seen.malformed);
    at = put_count(at, ",\"not_object\":", seen.not_object);
    *at++ = '}';
    frame_clear(&frame);
    frame_record(&frame, COUNTS_OUTPUT, line, (size_t)(at - line));
    seen = (struct counts){0};
    return frame_finish(&frame);
}
