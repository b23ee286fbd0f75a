/* libFuzzer driver for the chunked body decoder.
 *
 * Decodes the input in one piece and again in two and in three pieces (cut
 * points derived from the input), each piece in an exact-size copy so ASan
 * catches over-reads, and checks: consumed <= len on every call, data slices
 * lie inside the bytes just consumed, CEL_EAGAIN only once a piece is used
 * up, and every split gives the same data, result and end position as the
 * single piece.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "errors.h"
#include "http1.h"

#define REQUIRE(cond) do { if (!(cond)) abort(); } while (0)

typedef struct outcome {
    int rc;
    size_t used;
    char *data;
    size_t data_len;
} outcome;

static outcome decode(const uint8_t *in, size_t len, const size_t *cuts, size_t ncuts)
{
    outcome o = { CEL_EAGAIN, 0, malloc(len + 1), 0 };
    REQUIRE(o.data);
    cel_chunked c;
    cel_chunked_init(&c);
    size_t start = 0;
    for (size_t piece = 0; piece <= ncuts && o.rc == CEL_EAGAIN; piece++) {
        size_t stop = piece < ncuts ? cuts[piece] : len;
        size_t plen = stop - start, off = 0;
        char *buf = malloc(plen ? plen : 1);
        REQUIRE(buf);
        if (plen)
            memcpy(buf, in + start, plen);
        for (;;) {
            size_t n, dl;
            const char *d;
            int rc = cel_chunked_decode(&c, buf + off, plen - off, &n, &d, &dl);
            REQUIRE(n <= plen - off);
            if (rc == 1) {
                REQUIRE(dl > 0 && dl <= n && d == buf + off + n - dl);
                memcpy(o.data + o.data_len, d, dl);
                o.data_len += dl;
                off += n;
                continue;
            }
            REQUIRE(d == NULL && dl == 0);
            REQUIRE(rc == 0 || rc == CEL_EAGAIN || rc == CEL_EBADCHUNK);
            if (rc == CEL_EAGAIN)
                REQUIRE(n == plen - off);
            off += n;
            o.rc = rc;
            break;
        }
        o.used = start + off;
        free(buf);
        start = stop;
    }
    REQUIRE(o.used <= len && o.data_len <= o.used);
    return o;
}

static void check_same(const outcome *a, const outcome *b)
{
    REQUIRE(a->rc == b->rc && a->data_len == b->data_len);
    REQUIRE(memcmp(a->data, b->data, a->data_len) == 0);
    /* the end of the body is found at the same byte; an error may be noticed
     * at the same byte too, since no byte is ever looked at twice */
    REQUIRE(a->used == b->used);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    outcome whole = decode(data, size, NULL, 0);
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < size && i < 64; i++)
        h = (h ^ data[i]) * 16777619u;

    size_t cut = size ? h % (size + 1) : 0;
    outcome two = decode(data, size, &cut, 1);
    check_same(&whole, &two);

    size_t cuts[2] = { size ? (h >> 8) % (size + 1) : 0, size ? (h >> 16) % (size + 1) : 0 };
    if (cuts[0] > cuts[1]) {
        size_t t = cuts[0];
        cuts[0] = cuts[1];
        cuts[1] = t;
    }
    outcome three = decode(data, size, cuts, 2);
    check_same(&whole, &three);

    free(whole.data);
    free(two.data);
    free(three.data);
    return 0;
}
