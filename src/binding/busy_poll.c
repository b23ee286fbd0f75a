/* Busy polling (`--busy-poll-us`): after a poll of the server's epoll that
 * handled socket events, keep the event loop polling (every loop turn, no
 * sleeping) for up to busy_poll_ns, so the next message of a client that
 * answers quickly is picked up without the core going idle and being woken
 * again.  On a VM the wake-up of an idle vCPU is a large part of a loopback
 * round trip (one WebSocket connection ping-ponging messages: ~30k -> ~43k
 * messages/s on the bench machine).  The price is CPU: up to busy_poll_ns of
 * spinning after every burst of traffic, which is why it is off by default
 * (HAProxy's `busy-polling` and Linux's `net.core.busy_poll` make the same
 * trade and are off by default too).
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
 * traffic was last seen and queue the spin while that is within the window.
 * A failed call_soon is reported as unraisable and ends this spin.  Loop
 * thread, GIL held, busy polling on. */
void celeris_busy_poll_after(ServerObject *self, int events, int from_spin)
{
    if (events <= 0 && !from_spin)
        return;                         /* the loop woke us for nothing new */
    int64_t now = mono_ns();
    if (events > 0)
        self->busy_last_ns = now;
    if (self->spin_scheduled || !self->srv || now - self->busy_last_ns >= self->busy_poll_ns
        || celeris_server_pool_busy(self))
        return;
    if (celeris_call_soon(self, self->spin) == 0)
        self->spin_scheduled = 1;
}
