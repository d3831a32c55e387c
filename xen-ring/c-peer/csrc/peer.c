/*
 * A ring peer written against Xen's own io/ring.h macros, used by xen-ring's interoperability
 * tests and benchmarks. Everything ring-related goes through the header's macros: the point is to
 * exercise the Rust ring against the reference implementation, not against a re-derivation of it.
 *
 * The event channel is modelled by a counter in shared memory (struct xrp_evtchn): notifying
 * increments it, waiting spins (then yields) until it differs from the last value the waiter saw.
 * That is the latched "pending" semantics of a real event channel: a notification sent between a
 * waiter's final check and its sleep makes the sleep return at once. A waiter only sleeps after a
 * RING_FINAL_CHECK_FOR_* said there was no work, so a notification that the producer wrongly
 * suppressed turns into a sleep that never ends; the wait gives up after a timeout and the caller
 * reports a lost wake-up.
 */

#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sched.h>
#include <time.h>

/*
 * ring.h leaves the barriers to its user from interface 0x00030208 on; older interface versions
 * (the default when none is requested) map them to mb()/rmb()/wmb(), which userspace lacks.
 */
#define __XEN_INTERFACE_VERSION__ 0x00030208

/*
 * xen_mb() orders earlier stores before later loads (the producer's index store before its read of
 * the consumer's event index, and the consumer's event-index store before its re-read of the
 * producer index). Every architecture reorders store->load, so it must be a real fence (MFENCE or
 * a locked instruction on x86).
 *
 * xen_rmb() (load->load) and xen_wmb() (store->store): x86 is TSO, so the hardware never reorders
 * loads with loads or stores with stores, and only the compiler has to be kept from doing so.
 * Elsewhere they become acquire/release fences.
 */
#define xen_mb() __sync_synchronize()
#if defined(__x86_64__) || defined(__i386__)
#define xen_rmb() __asm__ __volatile__("" ::: "memory")
#define xen_wmb() __asm__ __volatile__("" ::: "memory")
#else
#define xen_rmb() __atomic_thread_fence(__ATOMIC_ACQUIRE)
#define xen_wmb() __atomic_thread_fence(__ATOMIC_RELEASE)
#endif

#include <xen/io/ring.h>
#include <xen/io/blkif.h> /* DEFINE_RING_TYPES(blkif, struct blkif_request, struct blkif_response) */

/* ---- The test protocol: the sizes of blkif's x86_64 request (112 bytes) and response (16). ---- */

#define XRP_PAYLOAD_WORDS 13

struct xrp_request {
    uint64_t id;
    uint64_t payload[XRP_PAYLOAD_WORDS];
};

struct xrp_response {
    uint64_t id;
    uint64_t checksum;
};

DEFINE_RING_TYPES(xrp, struct xrp_request, struct xrp_response);

_Static_assert(sizeof(struct xrp_request) == 112, "request must be blkif-sized");
_Static_assert(sizeof(struct xrp_response) == 16, "response must be blkif-sized");
_Static_assert(offsetof(struct xrp_sring, ring) == 64, "ring header must be 64 bytes");

/* ---- Shared with the Rust side (src/lib.rs mirrors these layouts). ---- */

struct xrp_evtchn {
    uint64_t count;              /* notifications sent so far; atomic */
    uint32_t sleeping;           /* atomic; non-zero while a waiter sleeps (for tests) */
    uint8_t pad[52];
};

struct xrp_link {
    struct xrp_evtchn to_back;   /* the frontend notifies the backend */
    struct xrp_evtchn to_front;  /* the backend notifies the frontend */
    uint32_t abort;              /* atomic; non-zero makes every wait give up */
    uint32_t spins;              /* polls between yields while waiting (0: 1) */
    uint8_t pad[56];
};

struct xrp_stats {
    uint64_t items;          /* requests served (back) or responses checked (front) */
    uint64_t pushes;         /* RING_PUSH_*_AND_CHECK_NOTIFY executed */
    uint64_t notifies;       /* of those, how many said to notify */
    uint64_t final_checks;   /* RING_FINAL_CHECK_FOR_* executed */
    uint64_t sleeps;         /* waits that found no pending notification and had to sleep */
    uint64_t wakes;          /* waits that returned because of a notification */
    uint64_t idle_wakes;     /* waits after which there was nothing to consume */
};

enum {
    XRP_OK = 0,
    XRP_LOST_WAKEUP = 1,     /* a wait timed out: nobody notified */
    XRP_ABORTED = 2,         /* the link's abort flag was raised */
    XRP_BAD_REQUEST = 3,     /* back: a request's id or payload was not the expected one */
    XRP_BAD_RESPONSE = 4,    /* front: a response's id or checksum was not the expected one */
    XRP_PEER_OVERFLOW = 5,   /* a producer index ran more than a ring ahead */
    XRP_BAD_CONFIG = 6,
};

struct xrp_result {
    int32_t code;
    uint32_t ring_size;
    uint64_t at;             /* item number of the failure */
    uint64_t expected;
    uint64_t got;
    /* the ring indices seen when the failure was detected */
    uint32_t req_prod, req_event, rsp_prod, rsp_event;
    uint32_t private_prod, private_cons;
    struct xrp_stats stats;
};

struct xrp_front_config {
    uint64_t count;          /* requests to issue */
    uint64_t seed;           /* for the batch sizes */
    uint32_t batch_min;      /* requests pushed at once: uniform in [batch_min, batch_max] */
    uint32_t batch_max;
    uint32_t closed_loop;    /* non-zero: wait for every response before the next batch */
    uint32_t pad;
    uint64_t timeout_ns;     /* how long a wait may last before it counts as a lost wake-up */
};

/* ---- Items: deterministic payloads, checked on both sides. Same functions in src/lib.rs. ---- */

static inline uint64_t payload_word(uint64_t id, unsigned i)
{
    return (id * 0x9E3779B97F4A7C15ull) ^ ((uint64_t)(i + 1) * 0xD1B54A32D192ED03ull);
}

static inline uint64_t checksum_of(const uint64_t *payload, uint64_t id)
{
    uint64_t acc = id;
    for (unsigned i = 0; i < XRP_PAYLOAD_WORDS; i++)
        acc += payload[i] * (2 * (uint64_t)i + 1);
    return acc;
}

static inline uint64_t expected_checksum(uint64_t id)
{
    uint64_t p[XRP_PAYLOAD_WORDS];
    for (unsigned i = 0; i < XRP_PAYLOAD_WORDS; i++)
        p[i] = payload_word(id, i);
    return checksum_of(p, id);
}

static inline uint64_t xorshift(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    *s = x;
    return x;
}

/* ---- The event channel. ---- */

static inline uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield" ::: "memory");
#endif
}

static inline void evtchn_notify(struct xrp_evtchn *ch)
{
    __atomic_fetch_add(&ch->count, 1, __ATOMIC_SEQ_CST);
}

/* Returns XRP_OK once a notification newer than *seen is pending, consuming it. */
static int evtchn_wait(struct xrp_link *link, struct xrp_evtchn *ch, uint64_t *seen,
                       uint64_t timeout_ns, struct xrp_stats *st)
{
    uint64_t v = __atomic_load_n(&ch->count, __ATOMIC_ACQUIRE);
    uint64_t start = 0;
    unsigned yields = 0;
    uint32_t spins = link->spins ? link->spins : 1;

    if (v != *seen)
        goto woken;
    st->sleeps++;
    __atomic_store_n(&ch->sleeping, 1, __ATOMIC_RELAXED);
    for (;;) {
        for (uint32_t i = 0; i < spins; i++) {
            cpu_relax();
            v = __atomic_load_n(&ch->count, __ATOMIC_ACQUIRE);
            if (v != *seen)
                goto awake;
        }
        if (__atomic_load_n(&link->abort, __ATOMIC_RELAXED)) {
            __atomic_store_n(&ch->sleeping, 0, __ATOMIC_RELAXED);
            return XRP_ABORTED;
        }
        sched_yield();
        if ((++yields & 63) == 0) {
            uint64_t t = now_ns();
            if (start == 0)
                start = t;
            else if (t - start > timeout_ns) {
                __atomic_store_n(&ch->sleeping, 0, __ATOMIC_RELAXED);
                return XRP_LOST_WAKEUP;
            }
        }
    }
awake:
    /* No longer asleep: as the Rust waiter does, so both sides do the same work per wake-up. */
    __atomic_store_n(&ch->sleeping, 0, __ATOMIC_RELAXED);
woken:
    *seen = v;
    st->wakes++;
    return XRP_OK;
}

/* ---- Setup. ---- */

/* Pins the calling thread to one CPU; returns 0 on success. */
int xrp_pin_to_cpu(unsigned cpu)
{
    cpu_set_t set;

    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    return sched_setaffinity(0, sizeof(set), &set);
}

/* SHARED_RING_INIT on the first page of the ring. */
void xrp_sring_init(void *mem)
{
    struct xrp_sring *s = mem;
    SHARED_RING_INIT(s);
}

/* The number of slots __RING_SIZE gives a ring of `bytes` bytes for the test protocol. */
uint32_t xrp_ring_size(void *mem, size_t bytes)
{
    struct xrp_front_ring f;
    FRONT_RING_INIT(&f, (struct xrp_sring *)mem, bytes);
    return RING_SIZE(&f);
}

size_t xrp_request_size(void) { return sizeof(struct xrp_request); }
size_t xrp_response_size(void) { return sizeof(struct xrp_response); }
size_t xrp_entry_size(void) { return sizeof(union xrp_sring_entry); }
size_t xrp_link_size(void) { return sizeof(struct xrp_link); }
size_t xrp_result_size(void) { return sizeof(struct xrp_result); }

static void snapshot(struct xrp_result *r, const struct xrp_sring *s, uint32_t prod, uint32_t cons)
{
    r->req_prod = s->req_prod;
    r->req_event = s->req_event;
    r->rsp_prod = s->rsp_prod;
    r->rsp_event = s->rsp_event;
    r->private_prod = prod;
    r->private_cons = cons;
}

/* ---- The backend: serve `count` requests, then return. ---- */

void xrp_back_serve(void *mem, size_t bytes, uint64_t count, struct xrp_link *link,
                    uint64_t timeout_ns, struct xrp_result *res)
{
    struct xrp_sring *sring = mem;
    struct xrp_back_ring back;
    struct xrp_stats st;
    uint64_t served = 0, seen = 0;
    int code = XRP_OK;

    memset(&st, 0, sizeof(st));
    memset(res, 0, sizeof(*res));
    BACK_RING_INIT(&back, sring, bytes);
    res->ring_size = RING_SIZE(&back);

    while (served < count) {
        RING_IDX rc = back.req_cons;
        RING_IDX rp = sring->req_prod;
        int notify, more;

        xen_rmb(); /* read the requests only after req_prod */
        if (RING_REQUEST_PROD_OVERFLOW(&back, rp)) {
            code = XRP_PEER_OVERFLOW;
            res->got = rp;
            break;
        }
        while (rc != rp && !RING_REQUEST_CONS_OVERFLOW(&back, rc)) {
            struct xrp_request req;
            struct xrp_response *rsp;

            RING_COPY_REQUEST(&back, rc, &req);
            back.req_cons = ++rc;
            if (req.id != served) {
                code = XRP_BAD_REQUEST;
                res->expected = served;
                res->got = req.id;
                goto out;
            }
            for (unsigned i = 0; i < XRP_PAYLOAD_WORDS; i++) {
                if (req.payload[i] != payload_word(req.id, i)) {
                    code = XRP_BAD_REQUEST;
                    res->expected = payload_word(req.id, i);
                    res->got = req.payload[i];
                    goto out;
                }
            }
            rsp = RING_GET_RESPONSE(&back, back.rsp_prod_pvt);
            rsp->id = req.id;
            rsp->checksum = checksum_of(req.payload, req.id);
            back.rsp_prod_pvt++;
            served++;
        }
        RING_PUSH_RESPONSES_AND_CHECK_NOTIFY(&back, notify);
        st.pushes++;
        if (notify) {
            st.notifies++;
            evtchn_notify(&link->to_front);
        }
        if (served == count)
            break;
        RING_FINAL_CHECK_FOR_REQUESTS(&back, more);
        st.final_checks++;
        if (!more) {
            code = evtchn_wait(link, &link->to_back, &seen, timeout_ns, &st);
            if (code != XRP_OK)
                break;
            if (!RING_HAS_UNCONSUMED_REQUESTS(&back))
                st.idle_wakes++;
        }
    }
out:
    res->code = code;
    res->at = served;
    snapshot(res, sring, back.rsp_prod_pvt, back.req_cons);
    st.items = served;
    res->stats = st;
}

/* ---- The frontend: issue `count` requests in batches and check every response. ---- */

void xrp_front_run(void *mem, size_t bytes, const struct xrp_front_config *cfg,
                   struct xrp_link *link, struct xrp_result *res)
{
    struct xrp_sring *sring = mem;
    struct xrp_front_ring front;
    struct xrp_stats st;
    uint64_t sent = 0, received = 0, seen = 0;
    uint64_t rng = cfg->seed | 1;
    uint32_t span;
    int code = XRP_OK;

    memset(&st, 0, sizeof(st));
    memset(res, 0, sizeof(*res));
    FRONT_RING_INIT(&front, sring, bytes);
    res->ring_size = RING_SIZE(&front);
    if (cfg->batch_min == 0 || cfg->batch_max < cfg->batch_min) {
        res->code = XRP_BAD_CONFIG;
        return;
    }
    span = cfg->batch_max - cfg->batch_min + 1;

    while (received < cfg->count) {
        int may_send = cfg->closed_loop ? sent == received : 1;

        if (sent < cfg->count && may_send && !RING_FULL(&front)) {
            uint64_t batch = cfg->batch_min + (span > 1 ? xorshift(&rng) % span : 0);
            uint64_t room = RING_FREE_REQUESTS(&front);
            int notify;

            if (batch > room)
                batch = room;
            if (batch > cfg->count - sent)
                batch = cfg->count - sent;
            for (uint64_t k = 0; k < batch; k++) {
                struct xrp_request *req = RING_GET_REQUEST(&front, front.req_prod_pvt);

                req->id = sent;
                for (unsigned i = 0; i < XRP_PAYLOAD_WORDS; i++)
                    req->payload[i] = payload_word(sent, i);
                front.req_prod_pvt++;
                sent++;
            }
            RING_PUSH_REQUESTS_AND_CHECK_NOTIFY(&front, notify);
            st.pushes++;
            if (notify) {
                st.notifies++;
                evtchn_notify(&link->to_back);
            }
        }

        {
            RING_IDX rp = sring->rsp_prod;

            xen_rmb(); /* read the responses only after rsp_prod */
            if (RING_RESPONSE_PROD_OVERFLOW(&front, rp)) {
                code = XRP_PEER_OVERFLOW;
                res->got = rp;
                break;
            }
            while (front.rsp_cons != rp) {
                struct xrp_response rsp;
                uint64_t want;

                RING_COPY_RESPONSE(&front, front.rsp_cons, &rsp);
                front.rsp_cons++;
                if (rsp.id != received) {
                    code = XRP_BAD_RESPONSE;
                    res->expected = received;
                    res->got = rsp.id;
                    goto out;
                }
                want = expected_checksum(received);
                if (rsp.checksum != want) {
                    code = XRP_BAD_RESPONSE;
                    res->expected = want;
                    res->got = rsp.checksum;
                    goto out;
                }
                received++;
            }
        }
        if (received == cfg->count)
            break;
        /* Sleep only when there is nothing to send and nothing to take. */
        if (sent < cfg->count && !RING_FULL(&front) &&
            (!cfg->closed_loop || sent == received))
            continue;
        {
            int more;

            RING_FINAL_CHECK_FOR_RESPONSES(&front, more);
            st.final_checks++;
            if (!more) {
                code = evtchn_wait(link, &link->to_front, &seen, cfg->timeout_ns, &st);
                if (code != XRP_OK)
                    break;
                if (!RING_HAS_UNCONSUMED_RESPONSES(&front))
                    st.idle_wakes++;
            }
        }
    }
out:
    res->code = code;
    res->at = received;
    snapshot(res, sring, front.req_prod_pvt, front.rsp_cons);
    st.items = received;
    res->stats = st;
}

/*
 * ---- One thread playing both ends, `rounds` times: push a batch of requests, serve them, take
 * the responses. No cross-core traffic, so this measures the cost of the ring code itself. ----
 * Returns the number of responses checked, or UINT64_MAX on a mismatch.
 */
uint64_t xrp_single_thread(void *mem, size_t bytes, uint64_t rounds, uint32_t batch)
{
    struct xrp_sring *sring = mem;
    struct xrp_front_ring front;
    struct xrp_back_ring back;
    uint64_t next = 0, received = 0, notifies = 0;

    SHARED_RING_INIT(sring);
    FRONT_RING_INIT(&front, sring, bytes);
    BACK_RING_INIT(&back, sring, bytes);
    if (batch == 0 || batch > RING_SIZE(&front))
        return UINT64_MAX;

    for (uint64_t r = 0; r < rounds; r++) {
        int notify, more;

        for (uint32_t k = 0; k < batch; k++) {
            struct xrp_request *req = RING_GET_REQUEST(&front, front.req_prod_pvt);

            req->id = next;
            for (unsigned i = 0; i < XRP_PAYLOAD_WORDS; i++)
                req->payload[i] = payload_word(next, i);
            front.req_prod_pvt++;
            next++;
        }
        RING_PUSH_REQUESTS_AND_CHECK_NOTIFY(&front, notify);
        notifies += notify;

        do {
            RING_IDX rc = back.req_cons, rp = sring->req_prod;

            xen_rmb();
            if (RING_REQUEST_PROD_OVERFLOW(&back, rp))
                return UINT64_MAX;
            while (rc != rp && !RING_REQUEST_CONS_OVERFLOW(&back, rc)) {
                struct xrp_request req;
                struct xrp_response *rsp;

                RING_COPY_REQUEST(&back, rc, &req);
                back.req_cons = ++rc;
                rsp = RING_GET_RESPONSE(&back, back.rsp_prod_pvt);
                rsp->id = req.id;
                rsp->checksum = checksum_of(req.payload, req.id);
                back.rsp_prod_pvt++;
            }
            RING_PUSH_RESPONSES_AND_CHECK_NOTIFY(&back, notify);
            notifies += notify;
            RING_FINAL_CHECK_FOR_REQUESTS(&back, more);
        } while (more);

        do {
            RING_IDX rp = sring->rsp_prod;

            xen_rmb();
            if (RING_RESPONSE_PROD_OVERFLOW(&front, rp))
                return UINT64_MAX;
            while (front.rsp_cons != rp) {
                struct xrp_response rsp;

                RING_COPY_RESPONSE(&front, front.rsp_cons, &rsp);
                front.rsp_cons++;
                if (rsp.id != received || rsp.checksum != expected_checksum(received))
                    return UINT64_MAX;
                received++;
            }
            RING_FINAL_CHECK_FOR_RESPONSES(&front, more);
        } while (more);
    }
    /* Keep the notification decisions observable so they are not optimised away. */
    __asm__ __volatile__("" : : "r"(notifies) : "memory");
    return received;
}

/*
 * ---- Single steps, one macro each, on rings whose private state the caller keeps (the structs
 * are mirrored in src/lib.rs). For lock-step comparisons with another implementation. ----
 */

_Static_assert(sizeof(struct xrp_front_ring) == 24, "front ring layout");
_Static_assert(sizeof(struct xrp_back_ring) == 24, "back ring layout");

/* XEN_FRONT_RING_INIT: SHARED_RING_INIT then FRONT_RING_INIT. */
void xrp_step_front_init(struct xrp_front_ring *f, void *mem, size_t bytes)
{
    XEN_FRONT_RING_INIT(f, (struct xrp_sring *)mem, bytes);
}

/* BACK_RING_INIT. */
void xrp_step_back_init(struct xrp_back_ring *b, void *mem, size_t bytes)
{
    BACK_RING_INIT(b, (struct xrp_sring *)mem, bytes);
}

uint32_t xrp_step_front_free(const struct xrp_front_ring *f)
{
    return RING_FREE_REQUESTS(f);
}

/* Fills the slot at req_prod_pvt through RING_GET_REQUEST and advances req_prod_pvt. */
void xrp_step_front_push(struct xrp_front_ring *f, const struct xrp_request *req)
{
    *RING_GET_REQUEST(f, f->req_prod_pvt) = *req;
    f->req_prod_pvt++;
}

int xrp_step_front_push_and_check_notify(struct xrp_front_ring *f)
{
    int notify;
    RING_PUSH_REQUESTS_AND_CHECK_NOTIFY(f, notify);
    return notify;
}

/* RING_HAS_UNCONSUMED_RESPONSES, then RING_COPY_RESPONSE of one response if there is one. */
int xrp_step_front_take(struct xrp_front_ring *f, struct xrp_response *rsp)
{
    if (!RING_HAS_UNCONSUMED_RESPONSES(f))
        return 0;
    xen_rmb();
    RING_COPY_RESPONSE(f, f->rsp_cons, rsp);
    f->rsp_cons++;
    return 1;
}

int xrp_step_front_final_check(struct xrp_front_ring *f)
{
    int more;
    RING_FINAL_CHECK_FOR_RESPONSES(f, more);
    return more;
}

/* RING_HAS_UNCONSUMED_REQUESTS, then RING_COPY_REQUEST of one request if there is one. */
int xrp_step_back_take(struct xrp_back_ring *b, struct xrp_request *req)
{
    if (!RING_HAS_UNCONSUMED_REQUESTS(b))
        return 0;
    xen_rmb();
    RING_COPY_REQUEST(b, b->req_cons, req);
    b->req_cons++;
    return 1;
}

/* Fills the slot at rsp_prod_pvt through RING_GET_RESPONSE and advances rsp_prod_pvt. */
void xrp_step_back_respond(struct xrp_back_ring *b, const struct xrp_response *rsp)
{
    *RING_GET_RESPONSE(b, b->rsp_prod_pvt) = *rsp;
    b->rsp_prod_pvt++;
}

int xrp_step_back_push_and_check_notify(struct xrp_back_ring *b)
{
    int notify;
    RING_PUSH_RESPONSES_AND_CHECK_NOTIFY(b, notify);
    return notify;
}

int xrp_step_back_final_check(struct xrp_back_ring *b)
{
    int more;
    RING_FINAL_CHECK_FOR_REQUESTS(b, more);
    return more;
}

/*
 * ---- A blkif backend: the real protocol types and ring (blkif_back_ring_t from io/blkif.h).
 * Request n is a read (n even) or write (n odd) with 1 + n % 11 segments, from the pattern below
 * (the same as in the Rust tests); every field is checked and answered with the request's id and
 * operation and status BLKIF_RSP_ERROR for every fifth request, BLKIF_RSP_OKAY otherwise. ----
 */

_Static_assert(sizeof(struct blkif_request) == 112, "x86_64 blkif request");
_Static_assert(sizeof(union blkif_sring_entry) == 112, "x86_64 blkif ring entry");

static int blkif_request_is(const struct blkif_request *req, uint64_t n, struct xrp_result *res)
{
    uint8_t nr = (uint8_t)(1 + n % BLKIF_MAX_SEGMENTS_PER_REQUEST);
    uint64_t want[4] = {
        0xb10c000000000000ull ^ n,
        (n & 1) ? BLKIF_OP_WRITE : BLKIF_OP_READ,
        nr,
        (uint16_t)(n * 7),
    };
    uint64_t got[4] = { req->id, req->operation, req->nr_segments, req->handle };

    for (unsigned i = 0; i < 4; i++) {
        if (want[i] != got[i]) {
            res->expected = want[i];
            res->got = got[i];
            return 0;
        }
    }
    if (req->sector_number != n * 8) {
        res->expected = n * 8;
        res->got = req->sector_number;
        return 0;
    }
    for (unsigned i = 0; i < nr; i++) {
        const struct blkif_request_segment *seg = &req->seg[i];
        uint64_t w = ((uint64_t)(uint32_t)(n * 11 + i) << 16) | ((i % 8) << 8) | 7;
        uint64_t g = ((uint64_t)seg->gref << 16) | ((uint64_t)seg->first_sect << 8) | seg->last_sect;

        if (w != g) {
            res->expected = w;
            res->got = g;
            return 0;
        }
    }
    return 1;
}

void xrp_blkif_back_serve(void *mem, size_t bytes, uint64_t count, struct xrp_link *link,
                          uint64_t timeout_ns, struct xrp_result *res)
{
    blkif_sring_t *sring = mem;
    blkif_back_ring_t back;
    struct xrp_stats st;
    uint64_t served = 0, seen = 0;
    int code = XRP_OK;

    memset(&st, 0, sizeof(st));
    memset(res, 0, sizeof(*res));
    BACK_RING_INIT(&back, sring, bytes);
    res->ring_size = RING_SIZE(&back);

    while (served < count) {
        RING_IDX rc = back.req_cons;
        RING_IDX rp = sring->req_prod;
        int notify, more;

        xen_rmb();
        if (RING_REQUEST_PROD_OVERFLOW(&back, rp)) {
            code = XRP_PEER_OVERFLOW;
            res->got = rp;
            break;
        }
        while (rc != rp && !RING_REQUEST_CONS_OVERFLOW(&back, rc)) {
            blkif_request_t req;
            blkif_response_t *rsp;

            RING_COPY_REQUEST(&back, rc, &req);
            back.req_cons = ++rc;
            if (!blkif_request_is(&req, served, res)) {
                code = XRP_BAD_REQUEST;
                goto out;
            }
            /* Field by field, as backends do: the padding keeps what the request left there. */
            rsp = RING_GET_RESPONSE(&back, back.rsp_prod_pvt);
            rsp->id = req.id;
            rsp->operation = req.operation;
            rsp->status = served % 5 == 0 ? BLKIF_RSP_ERROR : BLKIF_RSP_OKAY;
            back.rsp_prod_pvt++;
            served++;
        }
        RING_PUSH_RESPONSES_AND_CHECK_NOTIFY(&back, notify);
        st.pushes++;
        if (notify) {
            st.notifies++;
            evtchn_notify(&link->to_front);
        }
        if (served == count)
            break;
        RING_FINAL_CHECK_FOR_REQUESTS(&back, more);
        st.final_checks++;
        if (!more) {
            code = evtchn_wait(link, &link->to_back, &seen, timeout_ns, &st);
            if (code != XRP_OK)
                break;
            if (!RING_HAS_UNCONSUMED_REQUESTS(&back))
                st.idle_wakes++;
        }
    }
out:
    res->code = code;
    res->at = served;
    res->req_prod = sring->req_prod;
    res->req_event = sring->req_event;
    res->rsp_prod = sring->rsp_prod;
    res->rsp_event = sring->rsp_event;
    res->private_prod = back.rsp_prod_pvt;
    res->private_cons = back.req_cons;
    st.items = served;
    res->stats = st;
}

/* __RING_SIZE for blkif_sring_t in `bytes` bytes. */
uint32_t xrp_blkif_ring_size(void *mem, size_t bytes)
{
    blkif_front_ring_t f;
    FRONT_RING_INIT(&f, (blkif_sring_t *)mem, bytes);
    return RING_SIZE(&f);
}

/*
 * ---- xrp_single_thread with almost no work besides the ring: every request is the same
 * template with only its id changed, the backend answers {id, id} without looking at the
 * payload, the frontend checks the id. What remains is the ring code and the entry copies. ----
 */
uint64_t xrp_single_thread_light(void *mem, size_t bytes, uint64_t rounds, uint32_t batch)
{
    struct xrp_sring *sring = mem;
    struct xrp_front_ring front;
    struct xrp_back_ring back;
    struct xrp_request template;
    uint64_t next = 0, received = 0, notifies = 0;

    SHARED_RING_INIT(sring);
    FRONT_RING_INIT(&front, sring, bytes);
    BACK_RING_INIT(&back, sring, bytes);
    if (batch == 0 || batch > RING_SIZE(&front))
        return UINT64_MAX;
    for (unsigned i = 0; i < XRP_PAYLOAD_WORDS; i++)
        template.payload[i] = payload_word(0, i);

    for (uint64_t r = 0; r < rounds; r++) {
        int notify, more;

        for (uint32_t k = 0; k < batch; k++) {
            template.id = next++;
            *RING_GET_REQUEST(&front, front.req_prod_pvt) = template;
            front.req_prod_pvt++;
        }
        RING_PUSH_REQUESTS_AND_CHECK_NOTIFY(&front, notify);
        notifies += notify;

        do {
            RING_IDX rc = back.req_cons, rp = sring->req_prod;

            xen_rmb();
            if (RING_REQUEST_PROD_OVERFLOW(&back, rp))
                return UINT64_MAX;
            while (rc != rp && !RING_REQUEST_CONS_OVERFLOW(&back, rc)) {
                struct xrp_request req;
                struct xrp_response *rsp;

                RING_COPY_REQUEST(&back, rc, &req);
                back.req_cons = ++rc;
                rsp = RING_GET_RESPONSE(&back, back.rsp_prod_pvt);
                rsp->id = req.id;
                rsp->checksum = req.id;
                back.rsp_prod_pvt++;
            }
            RING_PUSH_RESPONSES_AND_CHECK_NOTIFY(&back, notify);
            notifies += notify;
            RING_FINAL_CHECK_FOR_REQUESTS(&back, more);
        } while (more);

        do {
            RING_IDX rp = sring->rsp_prod;

            xen_rmb();
            if (RING_RESPONSE_PROD_OVERFLOW(&front, rp))
                return UINT64_MAX;
            while (front.rsp_cons != rp) {
                struct xrp_response rsp;

                RING_COPY_RESPONSE(&front, front.rsp_cons, &rsp);
                front.rsp_cons++;
                if (rsp.id != received || rsp.checksum != received)
                    return UINT64_MAX;
                received++;
            }
            RING_FINAL_CHECK_FOR_RESPONSES(&front, more);
        } while (more);
    }
    __asm__ __volatile__("" : : "r"(notifies) : "memory");
    return received;
}
