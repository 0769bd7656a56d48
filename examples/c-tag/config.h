/* The rule's configuration (config.c). */
#ifndef CONFIG_H
#define CONFIG_H

#include <stddef.h>
#include <stdint.h>

/* The longest tag, in bytes as written in JSON (escapes count as written). */
#define CONFIG_MAX_TAG 64

struct config {
    /* The tag as a JSON string literal, quotes and escapes included: it is
     * spliced into events as it stands, so it stays valid JSON. A copy:
     * the buffer init reads from is reused for the batches. */
    uint8_t tag[CONFIG_MAX_TAG + 2];
    size_t tag_len;
};

/* Reads `s` into `out` (the tag defaults to "c-tag"); NULL, or why not. */
const char *config_read(const uint8_t *s, size_t len, struct config *out);

#endif
