#ifndef CEL_STATUS_H
#define CEL_STATUS_H

/* Reason phrase for an HTTP status code ("" when Python's http.HTTPStatus has
 * none); static storage. */
const char *cel_status_phrase(int status);

#endif
