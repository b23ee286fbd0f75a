#ifndef CEL_STATUS_H
#define CEL_STATUS_H

/* Reason phrase for an HTTP status code ("" when Python's http.HTTPStatus has
 * none); static storage. */
const char *cel_status_phrase(int status);

/* Replace the phrase of a status code 100-599 (e.g. with the running
 * Python's http.HTTPStatus, which renamed some in 3.13: what uvicorn sends).
 * `phrase` must outlive every later call (the caller keeps it for the
 * process lifetime); NULL restores the built-in one.  Not thread-safe: call
 * at start-up. */
void cel_status_set_phrase(int status, const char *phrase);

#endif
