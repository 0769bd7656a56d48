/* The rule's configuration: the `[transforms.<id>.config]` table, which
 * the host hands to rulebox_init as UTF-8 JSON. This rule takes one key,
 * `tag` (a string of 1 to 64 printable ASCII characters), so the reader
 * accepts only what that needs: one object whose values are strings. It
 * checks every byte itself: the manifest's schema is checked by the host
 * too, but init must not trust what it is given. */
#include <string.h>

#include "config.h"

static size_t skip_space(const uint8_t *s, size_t len, size_t at) {
    while (at < len && (s[at] == ' ' || s[at] == '\t' || s[at] == '\n' || s[at] == '\r')) {
        at++;
    }
    return at;
}

static int is_hex(uint8_t c) {
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

/* The end (after the closing quote) of the JSON string starting at `at`,
 * with only printable ASCII and valid escapes inside; 0 if it is not one. */
static size_t string_end(const uint8_t *s, size_t len, size_t at) {
    if (at >= len || s[at] != '"') {
        return 0;
    }
    for (at++; at < len; at++) {
        uint8_t c = s[at];
        if (c == '"') {
            return at + 1;
        }
        if (c < 0x20 || c > 0x7e) {
            return 0;
        }
        if (c == '\\') {
            if (++at >= len) {
                return 0;
            }
            if (s[at] == 'u') {
                if (at + 4 >= len || !is_hex(s[at + 1]) || !is_hex(s[at + 2]) ||
                    !is_hex(s[at + 3]) || !is_hex(s[at + 4])) {
                    return 0;
                }
                at += 4;
            } else if (!strchr("\"\\/bfnrt", s[at]) || s[at] == 0) {
                return 0;
            }
        }
    }
    return 0;
}

static int same(const uint8_t *s, size_t start, size_t end, const char *literal) {
    size_t n = strlen(literal);
    return end - start == n && memcmp(s + start, literal, n) == 0;
}

/* "config: <what> <the text at start..end>" (cut at 64 bytes), in a
 * static buffer. */
static const char *refuse(const char *what, const uint8_t *s, size_t start, size_t end) {
    static char why[128];
    size_t w = strlen(what), n = end - start > 64 ? 64 : end - start;
    memcpy(why, "config: ", 8);
    memcpy(why + 8, what, w);
    why[8 + w] = ' ';
    memcpy(why + 9 + w, s + start, n);
    why[9 + w + n] = 0;
    return why;
}

const char *config_read(const uint8_t *s, size_t len, struct config *out) {
    static const char default_tag[] = "\"c-tag\"";
    memcpy(out->tag, default_tag, sizeof default_tag - 1);
    out->tag_len = sizeof default_tag - 1;
    size_t at = skip_space(s, len, 0);
    if (at >= len || s[at] != '{') {
        return "config: expected a JSON object";
    }
    at = skip_space(s, len, at + 1);
    while (at < len && s[at] != '}') {
        size_t key = at, key_end = string_end(s, len, at);
        if (!key_end) {
            return "config: expected a key (a string of printable ASCII)";
        }
        at = skip_space(s, len, key_end);
        if (at >= len || s[at] != ':') {
            return "config: expected ':' after a key";
        }
        if (!same(s, key, key_end, "\"tag\"")) {
            return refuse("unknown key", s, key, key_end);
        }
        size_t value = skip_space(s, len, at + 1), value_end = string_end(s, len, value);
        if (!value_end) {
            return "config: tag must be a string of printable ASCII";
        }
        if (value_end - value < 3 || value_end - value > CONFIG_MAX_TAG + 2) {
            return "config: tag must be 1 to 64 bytes long";
        }
        memcpy(out->tag, s + value, value_end - value);
        out->tag_len = value_end - value;
        at = skip_space(s, len, value_end);
        if (at < len && s[at] == ',') {
            at = skip_space(s, len, at + 1);
            if (at < len && s[at] == '}') {
                return "config: a ',' before '}'";
            }
        } else if (at >= len || s[at] != '}') {
            return "config: expected ',' or '}'";
        }
    }
    if (at >= len || skip_space(s, len, at + 1) != len) {
        return "config: expected one JSON object and nothing after it";
    }
    return NULL;
}
