/* json.h -- writing JSON text straight into a buffer.
 *
 * Parsing uses jansson.  Responses on the hot paths (query results, log
 * entries) are written directly as text: building a jansson tree for every
 * row costs more than the query.  These helpers only escape and format.
 */
#ifndef MR_JSON_H
#define MR_JSON_H

#include <stddef.h>

#include "buf.h"

/* Append <s> (<n> bytes of UTF-8) as a quoted JSON string.  A byte that
 * is not part of well-formed UTF-8 is written as U+FFFD, so that the text
 * stays JSON whatever a client put in a path or a header we echo. */
void mr_json_str(struct mr_buf *b, const char *s, size_t n);
/* Same, for a NUL-terminated string. */
void mr_json_cstr(struct mr_buf *b, const char *s);
/* Append a double as JSON (non-finite values become null: JSON has none). */
void mr_json_double(struct mr_buf *b, double d);
/* Append {"error":{"code":<code>,"message":<msg>}}. */
void mr_json_error(struct mr_buf *b, const char *code, const char *msg);

#endif
