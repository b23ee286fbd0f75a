/* RFC 6455 WebSocket: incremental frame parser, frame writer, handshake
 * helpers (Sec-WebSocket-Key validation, Sec-WebSocket-Accept with our own
 * SHA-1 and base64).  No I/O; the parser never allocates (the writers only
 * grow the caller's cel_buf).  The server (server.c) owns the connection and
 * the message buffer; see docs/websocket.md.
 *
 * The parser is incremental and zero-copy.  Data frames are handed out as
 * slices of the caller's buffer as their bytes arrive (a 16 MiB frame never
 * has to sit in the input buffer whole); control frames (at most 125 bytes
 * of payload) are handed out once complete.  Masked payloads are unmasked
 * in place, and only bytes reported as consumed are ever written, so the
 * caller keeps unconsumed bytes and appends more after them.
 *
 * Checks: reserved bits (1002; RSV1 is allowed on a message's first frame
 * when permessage-deflate was negotiated, see allow_rsv1), unknown opcodes (1002), fragmented or
 * oversize control frames (1002), masking required of clients / forbidden
 * to servers (1002), 64-bit lengths with the top bit set (1002),
 * continuation without a message / a new message inside a fragmented one
 * (1002), close frame payloads of 1 byte or with an invalid code (1002),
 * UTF-8 of text messages across fragments and of close reasons (1007),
 * message size over the limit (1009, reported from the frame header,
 * before the payload is read).
 */
#ifndef CEL_WS_H
#define CEL_WS_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "http1.h"

enum cel_ws_opcode {
    CEL_WS_CONT = 0x0,
    CEL_WS_TEXT = 0x1,
    CEL_WS_BINARY = 0x2,
    CEL_WS_CLOSE = 0x8,
    CEL_WS_PING = 0x9,
    CEL_WS_PONG = 0xA
};

enum cel_ws_role {
    CEL_WS_SERVER = 0,          /* parses client frames: every frame must be masked */
    CEL_WS_CLIENT = 1           /* parses server frames: no frame may be masked */
};

/* Close codes used by the server. */
enum cel_ws_close_code {
    CEL_WS_CLOSE_NORMAL = 1000,
    CEL_WS_CLOSE_GOING_AWAY = 1001,
    CEL_WS_CLOSE_PROTOCOL = 1002,
    CEL_WS_CLOSE_NO_STATUS = 1005,  /* never on the wire: a close frame without a code */
    CEL_WS_CLOSE_ABNORMAL = 1006,   /* never on the wire: the connection dropped */
    CEL_WS_CLOSE_INVALID_DATA = 1007,
    CEL_WS_CLOSE_TOO_BIG = 1009,
    CEL_WS_CLOSE_INTERNAL = 1011,
    CEL_WS_CLOSE_RESTART = 1012
};

enum cel_ws_event_kind {
    CEL_WS_EV_DATA = 1,         /* a slice of a text/binary message */
    CEL_WS_EV_CONTROL = 2       /* a complete close/ping/pong frame */
};

typedef struct cel_ws_event {
    int kind;                   /* enum cel_ws_event_kind */
    int opcode;                 /* DATA: the message's TEXT or BINARY; CONTROL: CLOSE/PING/PONG */
    char *data;                 /* payload slice in the caller's buffer (unmasked); may be empty */
    size_t len;
    unsigned first : 1;         /* DATA: first slice of the message */
    unsigned last : 1;          /* DATA: the message is complete after this slice */
    unsigned compressed : 1;    /* DATA: the message had RSV1 (permessage-deflate); its text is
                                   not UTF-8-checked here: the caller checks it once inflated */
    int close_code;             /* CLOSE: the code, or 1005 when the payload was empty */
    const char *reason;         /* CLOSE: the reason (valid UTF-8), a slice of data */
    size_t reason_len;
} cel_ws_event;

typedef struct cel_ws_parser {
    /* configuration (set by cel_ws_parser_init, may be changed between calls) */
    uint64_t max_message;       /* bytes per message (all fragments); 0 = unlimited */
    int role;                   /* enum cel_ws_role */
    int allow_rsv1;             /* permessage-deflate negotiated: RSV1 marks compressed messages */
    /* private */
    int err;                    /* sticky error, 0 if none */
    unsigned in_frame : 1;      /* a data frame's header was consumed; payload pending */
    unsigned fin : 1;
    unsigned masked : 1;
    unsigned msg_started : 1;   /* a slice of the current message was handed out */
    unsigned msg_compressed : 1;/* the current message has RSV1 */
    unsigned char mask[4];
    uint64_t frame_left;        /* payload bytes of the current data frame still to come */
    uint64_t frame_off;         /* payload bytes of the current frame seen (mask phase) */
    int msg_opcode;             /* TEXT/BINARY while a message is in progress, else 0 */
    uint64_t msg_len;           /* bytes of the current message so far (headers included) */
    uint32_t utf8;              /* incremental UTF-8 validator state */
} cel_ws_parser;

/* Initialise p for the given role and message limit (0 = unlimited). */
void cel_ws_parser_init(cel_ws_parser *p, int role, uint64_t max_message);

/* Parse from buf[0..len).  On return *consumed bytes of buf were used (and
 * only those may have been modified, by unmasking).
 * Returns 1 with *ev filled (its slices point into buf and are valid while
 * buf is), CEL_EAGAIN when more bytes are needed (every usable byte was
 * consumed; an incomplete header or control frame is left unconsumed), or
 * CEL_EWSPROTO / CEL_EWSUTF8 / CEL_EWSTOOBIG; errors are sticky: every later
 * call returns the same code (cel_ws_error_close_code gives the close code
 * to send).  A zero-length data frame yields an event with len 0. */
int cel_ws_parse(cel_ws_parser *p, char *buf, size_t len, size_t *consumed, cel_ws_event *ev);

/* The close code for a parser error: 1002, 1007, 1009; 1011 otherwise. */
int cel_ws_error_close_code(int err);

/* Is `code` allowed in a close frame on the wire (RFC 6455 7.4, IANA)? */
int cel_ws_close_code_valid(int code);

/* Is s[0..n) valid UTF-8 (no surrogates, no overlongs, <= U+10FFFF)? */
int cel_ws_utf8_valid(const char *s, size_t n);

/* Incremental UTF-8 validation: *state starts at 0; feed slices in order.
 * Returns 0 while valid so far, -1 on an invalid sequence.  The text is
 * complete and valid iff the last call returned 0 and *state == 0. */
int cel_ws_utf8_step(uint32_t *state, const char *s, size_t n);

/* XOR data[0..n) with mask, starting at mask phase `offset`. */
void cel_ws_unmask(char *data, size_t n, const unsigned char mask[4], uint64_t offset);

/* Write a frame header for a payload of n bytes into hdr (14 bytes
 * available); mask NULL for server frames.  Returns the header length. */
size_t cel_ws_frame_header(unsigned char hdr[14], int fin, int opcode, uint64_t n,
                           const unsigned char *mask);

/* Append one unmasked (server) frame with FIN set (and RSV1 with rsv1: a
 * compressed message).  0 or CEL_ENOMEM (b unchanged). */
int cel_ws_write_frame(cel_buf *b, int opcode, const char *p, size_t n);
int cel_ws_write_frame_ex(cel_buf *b, int opcode, int rsv1, const char *p, size_t n);

/* Append a close frame: code 0 writes an empty payload; the reason is cut
 * to 123 bytes (at a UTF-8 boundary).  0 or CEL_ENOMEM. */
int cel_ws_write_close(cel_buf *b, int code, const char *reason, size_t len);

/* ---- handshake ---- */

#define CEL_WS_ACCEPT_LEN 28

typedef struct cel_ws_handshake {
    char accept[CEL_WS_ACCEPT_LEN + 1];     /* Sec-WebSocket-Accept, NUL-terminated */
    unsigned deflate_offered : 1;           /* the client offered permessage-deflate */
} cel_ws_handshake;

/* Is req an upgrade to WebSocket ("Upgrade: websocket" + "Connection:
 * upgrade")?  1 or 0; other upgrades (h2c ...) are not. */
int cel_ws_is_upgrade(const cel_http_request *req);

/* Validate a WebSocket opening handshake (req is an upgrade per
 * cel_ws_is_upgrade) and compute the accept value.  Returns 0,
 * CEL_EWSHANDSHAKE (not GET, not HTTP/1.1, a body, a missing/duplicate/
 * malformed Sec-WebSocket-Key: answer 400) or CEL_EWSVERSION (missing or
 * other Sec-WebSocket-Version: answer 426 with "sec-websocket-version: 13"). */
int cel_ws_handshake_check(const cel_http_request *req, cel_ws_handshake *hs);

/* Is key (as sent) a valid Sec-WebSocket-Key: base64 of 16 bytes? */
int cel_ws_key_valid(const char *key, size_t len);

/* out = base64(SHA-1(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11")), 28
 * characters plus NUL. */
void cel_ws_accept_key(const char *key, size_t len, char out[CEL_WS_ACCEPT_LEN + 1]);

/* SHA-1 of data[0..n) (FIPS 180-4). */
void cel_sha1(const void *data, size_t n, unsigned char digest[20]);

/* Standard base64 with padding of in[0..n) into out (4*ceil(n/3) chars +
 * NUL); returns the length written (without the NUL). */
size_t cel_base64_encode(const unsigned char *in, size_t n, char *out);

#endif
