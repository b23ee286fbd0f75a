#include "date.h"

#include <string.h>

static const char wday[7][4] = { "Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat" };
static const char mon[12][4] = { "Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                 "Jul", "Aug", "Sep", "Oct", "Nov", "Dec" };

static time_t cached_at = -1;
static char cached[CEL_DATE_LEN + 1];

static void two(char *p, int v)
{
    p[0] = (char)('0' + (v / 10) % 10);
    p[1] = (char)('0' + v % 10);
}

const char *cel_date_format(time_t now)
{
    if (now != cached_at) {
        struct tm tm;
        gmtime_r(&now, &tm);
        /* "Sun, 06 Nov 1994 08:49:37 GMT" */
        char *p = cached;
        memcpy(p, wday[tm.tm_wday % 7], 3);
        memcpy(p + 3, ", ", 2);
        two(p + 5, tm.tm_mday);
        p[7] = ' ';
        memcpy(p + 8, mon[tm.tm_mon % 12], 3);
        p[11] = ' ';
        int y = tm.tm_year + 1900;
        two(p + 12, y / 100);
        two(p + 14, y % 100);
        p[16] = ' ';
        two(p + 17, tm.tm_hour);
        p[19] = ':';
        two(p + 20, tm.tm_min);
        p[22] = ':';
        two(p + 23, tm.tm_sec);
        memcpy(p + 25, " GMT", 4);
        p[29] = '\0';
        cached_at = now;
    }
    return cached;
}
