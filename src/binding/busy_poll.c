/* Busy polling (`--busy-poll-us`, 50 by default): while traffic is dense,
 * keep the event loop polling (every loop turn, no sleeping) for up to
 * busy_poll_ns after the last socket event, so the next message of a client
 * that answers quickly is picked up without the core going idle and being
 * woken again.  On a VM the wake-up of an idle vCPU is a large part of a
 * loopback round trip (one WebSocket connection ping-ponging messages: ~41k
 * -> ~60k messages/s on the bench machine).
 *
 * Dense means: this poll's events came within the window of the previous
 * events.  A burst after a quiet spell (the first request of a keep-alive
 * client that thinks for a millisecond, a request every few ms) does not
 * start a spin, so sparse traffic costs no CPU; the spin runs only while
 * events keep coming at least every busy_poll_ns, where the process is busy
 * anyway, and ends busy_poll_ns after the last of them.  0 turns it off
 * (HAProxy's `busy-polling` and Linux's `net.core.busy_poll` are off by
 * default and spin after every event; this is the adaptive kind that .NET's
 * and Go's schedulers do briefly before parking a thread).
 *
 * The spin is a bound self.spin queued with loop.call_soon: while it is
 * queued the loop polls its own descriptors with a zero timeout each turn
 * (timers, other sockets and callbacks keep running), and self.spin polls
 * the server's.  It is not queued while the server's thread pool has jobs
 * in flight: their threads need this process's CPU and the GIL more than
 * the loop needs a head start on the next request. */
#include "binding.h"

#include <time.h>

static int64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Turn busy polling on (usec > 0) or off (0).  0, or -1 with an exception
 * (bad value; no memory for the bound method).  Loop thread, GIL held. */
int celeris_busy_poll_set(ServerObject *self, double usec)
{
    if (!(usec >= 0 && usec <= 1e6)) {
        PyErr_SetString(PyExc_ValueError, "busy_poll_us must be between 0 and 1000000");
        return -1;
    }
    if (usec > 0 && !self->spin) {
        self->spin = PyObject_GetAttrString((PyObject *)self, "spin");
        if (!self->spin)
            return -1;
    }
    self->busy_poll_ns = (int64_t)(usec * 1000.0);
    return 0;
}

/* After a poll of the server's epoll that handled `events` events (the
 * reader callback's poll, or the spin's own when from_spin): remember when
 * traffic was last seen; start a spin when these events came within the
 * window of the previous ones (dense traffic), keep it queued while the last
 * events are within the window.  A failed call_soon is reported as
 * unraisable and ends this spin.  Loop thread, GIL held, busy polling on. */
void celeris_busy_poll_after(ServerObject *self, int events, int from_spin)
{
    if (events <= 0 && !from_spin)
        return;                         /* the loop woke us for nothing new */
    int64_t now = mono_ns();
    if (events > 0) {
        int64_t gap = now - self->busy_last_ns;
        self->busy_last_ns = now;
        if (!from_spin && !self->spin_scheduled && gap >= self->busy_poll_ns)
            return;                     /* after a quiet spell: sleep as usual */
    }
    if (self->spin_scheduled || !self->srv || now - self->busy_last_ns >= self->busy_poll_ns
        || celeris_server_pool_busy(self))
        return;
    if (celeris_call_soon(self, self->spin) == 0)
        self->spin_scheduled = 1;
}
