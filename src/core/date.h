/* IMF-fixdate for the Date header, formatted once per second. */
#ifndef CEL_DATE_H
#define CEL_DATE_H

#include <time.h>

#define CEL_DATE_LEN 29   /* "Sun, 06 Nov 1994 08:49:37 GMT" */

/* Returns a pointer to CEL_DATE_LEN chars (NUL-terminated) for `now`,
 * reformatting only when the second changed.  Static storage: the process
 * runs the core on one thread. */
const char *cel_date_format(time_t now);

#endif
