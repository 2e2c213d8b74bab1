/*
 * iom.h: the IO module ABI (version 1).
 *
 * A contract between any building-automation controller (the "host") and any
 * IO module shipped as a shared library. The host loads the library with
 * dlopen(), checks iom_abi_version(), reads iom_module_manifest() (TOML), and
 * drives instances through the functions below. The wsio WebSocket Client
 * module implements it; the wsio host binary consumes it.
 *
 * The same contract in Rust is the iom crate (crates/iom): its test compiles
 * this header against the crate's sizes, offsets, constants and function
 * types, so a change here must be made there too.
 *
 * Strings
 *   All strings are UTF-8. Strings passed in are NUL-terminated and borrowed
 *   for the duration of the call only. Strings returned as `char *` are owned
 *   by the caller and must be freed with iom_string_free(); strings returned
 *   as `const char *` are owned by the module (see each function).
 *   Trigger data and trigger variables are byte ranges (pointer + length,
 *   iom_str) because a message may contain NUL bytes.
 *
 * Errors
 *   Functions that can fail take `char **error` (may be NULL). On failure they
 *   return NULL / a non-zero code and, when `error` is not NULL, store a
 *   message naming the bad input and what is accepted, e.g.
 *   "Port must be an integer from 0 to 65535, got 70000". Free it with
 *   iom_string_free(). On success *error is set to NULL. No function panics
 *   or aborts across this boundary: NULL pointers, invalid UTF-8, unknown
 *   trigger/action/property names and malformed JSON are reported as errors.
 *   Secrets (bearer tokens, passwords, keys) never appear in error messages,
 *   log lines or status values.
 *
 * Threads
 *   Every function may be called from any host thread, concurrently.
 *   Actions return at once: the work happens on the module's own thread.
 *   Callbacks (iom_host_callbacks) are called from the module's thread, one
 *   at a time per module, in event order. A callback must return quickly:
 *   while it runs, no other instance of the module is served.
 *   A callback may call the iom_* functions that never wait: a host may test
 *   a fired trigger (iom_trigger_test) and run a wired action
 *   (iom_instance_action or iom_action_run, which only queue the work)
 *   right inside fire_trigger, which saves two thread hops per wire.
 *   Expensive work (I/O, locks held long, a slow script) belongs on a host
 *   thread: queue the event and return. iom_instance_destroy() waits for the module's
 *   thread, so from inside a callback it is refused with IOM_ERR_IN_CALLBACK
 *   (and does nothing).
 *   iom_instance_destroy() returns only when no further callback for that
 *   instance can arrive.
 */
#ifndef IOM_H
#define IOM_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define IOM_ABI_VERSION 1u

/* Flags of fired trigger data (fire_trigger_ex, iom_trigger_test_ex). */
#define IOM_DATA_BINARY 1u /* the message was a binary frame: data is its lowercase hex
                              (or its text, with the module's Binary As Text) */

/* Return codes of the functions that return int. */
#define IOM_OK 0
#define IOM_ERR_INVALID_ARGUMENT 1 /* NULL, bad UTF-8, bad JSON, unknown name, bad value */
#define IOM_ERR_REJECTED 2         /* valid input the instance cannot take now (e.g. queue full) */
#define IOM_ERR_IN_CALLBACK 3      /* called from inside a host callback */
#define IOM_ERR_PANIC 4            /* internal error caught at the boundary (a bug: please report) */

/* Log levels of the controller, most to least important. */
typedef enum iom_log_level {
    IOM_LOG_CRITICAL = 0,
    IOM_LOG_TERSE = 1,
    IOM_LOG_NORMAL = 2,
    IOM_LOG_EXTENDED = 3,
    IOM_LOG_VERBOSE = 4,
    IOM_LOG_DEBUG = 5
} iom_log_level;

/* A borrowed byte range; not NUL-terminated. */
typedef struct iom_str {
    const char *ptr;
    size_t len;
} iom_str;

typedef struct iom_instance iom_instance;                 /* opaque */
typedef struct iom_prepared_trigger iom_prepared_trigger; /* opaque */
typedef struct iom_variables iom_variables;               /* opaque */
typedef struct iom_prepared_action iom_prepared_action;   /* opaque */

/*
 * Host callbacks. Set struct_size = sizeof(iom_host_callbacks) and
 * abi_version = IOM_ABI_VERSION; a module refuses a version it does not
 * implement. Any callback may be NULL (the event is then dropped by the host's
 * choice). The pointers given to a callback are valid only during the call.
 */
typedef struct iom_host_callbacks {
    uint32_t struct_size;
    uint32_t abi_version;
    void *user_data;
    /* A trigger fired. `trigger` is the manifest name (e.g. "Messages Received");
     * `data` is the event's data: the message for Messages Received, the reason
     * for Disconnected, empty otherwise. Test it with iom_trigger_test(). */
    void (*fire_trigger)(void *user_data, uint64_t instance_id, const char *trigger,
                         const uint8_t *data, size_t len);
    /* A status variable changed. `timestamp` is ISO 8601 with offset and
     * milliseconds, e.g. "2026-11-21T06:34:21.123+00:00". */
    void (*status_changed)(void *user_data, uint64_t instance_id, const char *key,
                           const char *value, const char *timestamp);
    /* A log line from the instance (instance_id) or the module (instance_id 0
     * is never used by an instance; hosts choose ids >= 1). */
    void (*log)(void *user_data, uint64_t instance_id, iom_log_level level, const char *message);
    /* Optional; a later addition to ABI 1, used when struct_size covers it
     * and it is not NULL (older hosts simply have a shorter struct). Like
     * fire_trigger, plus `flags` (IOM_DATA_BINARY) to pass on to
     * iom_trigger_test_ex(). When present, the module calls it instead of
     * fire_trigger. */
    void (*fire_trigger_ex)(void *user_data, uint64_t instance_id, const char *trigger,
                            const uint8_t *data, size_t len, uint32_t flags);
    /* Optional; a later addition to ABI 1: flow control (see "Flow control"
     * below). Like fire_trigger_ex, but the host answers: IOM_OK when it took
     * the event, IOM_ERR_REJECTED when it cannot take it now (any other value
     * counts as taken). When present
     * (struct_size covers it and it is not NULL), the module calls it instead
     * of fire_trigger_ex and fire_trigger. */
    int (*fire_trigger_flow)(void *user_data, uint64_t instance_id, const char *trigger,
                             const uint8_t *data, size_t len, uint32_t flags);
} iom_host_callbacks;

/*
 * Flow control (fire_trigger_flow, iom_instance_resume)
 *   A host that cannot keep up refuses a fired trigger (IOM_ERR_REJECTED)
 *   instead of dropping it or blocking the module's thread. The module then:
 *   - keeps that event, and every later trigger of the same instance behind
 *     it, in order (the module's thread never waits on the host);
 *   - stops reading that instance's connection, so TCP pushes back on the
 *     server; other instances go on. It holds at most one message (up to its
 *     Max Message Size) plus the few connection triggers (Disconnected, ...)
 *     that can fire without reading;
 *   - suspends its own keep-alive for the instance (no ping is sent, Pong
 *     Timeout and Idle Timeout do not run: a connection that is not read
 *     cannot see a pong) and restarts it from the moment it reads again. A
 *     server's own pings are answered when reading resumes;
 *   - still closes: a Disconnect or iom_instance_destroy() reads the
 *     connection again to finish the close handshake (messages that arrive
 *     after a close has begun fire no trigger).
 *   When the host has room again it calls iom_instance_resume(); the module
 *   offers the held events again, oldest first, on its own thread (each may
 *   be refused again), then reads the connection again.
 *   iom_instance_destroy() offers what is still held once more; an event the
 *   host refuses then is dropped and the module logs how many were.
 *   A host that leaves fire_trigger_flow out (or NULL) gets every event
 *   through fire_trigger_ex / fire_trigger as before, and must take them all.
 *   A module without iom_instance_resume never calls fire_trigger_flow.
 */

/* The ABI version the module implements (IOM_ABI_VERSION it was built with). */
uint32_t iom_abi_version(void);

/* The module manifest (TOML text). Owned by the module, valid while it is loaded. */
const char *iom_module_manifest(void);

/*
 * Create an instance. `instance_id` is chosen by the host (>= 1) and given back
 * in every callback. `properties_json` is a JSON object of instance properties
 * by manifest name, e.g. {"Hostname":"127.0.0.1","Port":8765}; missing
 * properties take the manifest default. The callbacks struct is copied.
 * Returns NULL on error (see `error`).
 */
iom_instance *iom_instance_create(const iom_host_callbacks *host, uint64_t instance_id,
                                  const char *properties_json, char **error);

/*
 * Close the instance cleanly (close frame 1000, Disconnected fires if it was
 * connected) and free it. Returns only when no further callback for this
 * instance can arrive. NULL is ignored. Returns IOM_ERR_IN_CALLBACK (and does
 * nothing) when called from inside a callback.
 */
int iom_instance_destroy(iom_instance *instance);

/*
 * Run an action (manifest name, e.g. "Send Message") with its properties as a
 * JSON object ("{}" or NULL for none). String properties may contain <1>, <2>
 * ... placeholders, replaced by `variables[0]`, `variables[1]`, ... (the
 * firing trigger's variables; may be NULL when n_variables is 0).
 * Returns at once; the work happens on the module's thread. Actions from
 * all host threads run in the order they were accepted. For Send Message,
 * IOM_OK means the message was handed to the connection (or queued, with
 * Queue While Disconnected); once a Disconnect has been accepted, later Send
 * Messages are refused (IOM_ERR_REJECTED) rather than accepted and dropped.
 * So are Send Messages past 10,000 messages or 16 MiB of message bytes
 * waiting for a server that does not read (one larger message is taken
 * when nothing waits); retry later.
 * A connection lost before the message was written is logged, never silent.
 *
 * Actions see the firing message only through `variables`, so an action
 * that depends on whether it was binary reads that from them, by this
 * convention: the firing message was binary when there are at least two
 * variables and the last one is exactly "binary" (the Message Type
 * variable of Messages Received, which iom_trigger_test_ex() always puts
 * last, given IOM_DATA_BINARY). Send Message with Message Type "As
 * Received" then reads its Message, placeholders filled, as hex (so "<1>",
 * the message's hex, sends the original bytes in a binary frame) and
 * otherwise sends it as text. A host that passes a matched trigger's
 * variables unchanged, as wires do, needs nothing more; one that tests
 * with iom_trigger_test() (flags 0) gets Message Type "text" for every
 * message, so As Received sends text.
 */
int iom_instance_action(iom_instance *instance, const char *action, const char *properties_json,
                        const iom_str *variables, size_t n_variables, char **error);

/*
 * Compile an action's properties once, for an action a host runs many times
 * (a wire's action, compiled when the project loads). Checks exactly what
 * iom_instance_action checks (a Binary Message whose hex comes partly from
 * placeholders is checked when it runs). The prepared action runs on
 * `instance` and does not keep it alive: after iom_instance_destroy(),
 * iom_action_run() returns IOM_ERR_INVALID_ARGUMENT. Free with
 * iom_action_free(). Returns NULL on error (see `error`).
 */
iom_prepared_action *iom_action_prepare(iom_instance *instance, const char *action,
                                        const char *properties_json, char **error);

/*
 * Run a prepared action with the firing trigger's variables (for <1>, <2>
 * ... placeholders; `variables` may be NULL when n_variables is 0). Same
 * return codes and ordering as iom_instance_action(), without parsing JSON
 * per call: the fast way to run a wire. Send Message's As Received reads
 * `variables` as iom_instance_action() says. Thread-safe.
 */
int iom_action_run(const iom_prepared_action *prepared, const iom_str *variables,
                   size_t n_variables, char **error);

/* NULL is ignored. */
void iom_action_free(iom_prepared_action *prepared);

/* A JSON snapshot of the status variables:
 * [{"key":"ConnectionStatus","label":"Connection Status","value":"...","timestamp":"..."}].
 *
 * Connection Status is for people; a controller that acts on the connection
 * reads the "ConnectionState" status variable (label "Connection State"),
 * whose value is always one of these words:
 *   disconnected         not connected and not trying to
 *   connecting           a connection attempt (DNS, TCP, proxy) is under way
 *   handshaking          TCP is up; TLS and the WebSocket handshake are under way
 *   established          the WebSocket is open: messages flow
 *   closing              a close handshake is under way
 *   failed               a connection attempt failed and no retry follows
 *   reconnecting         waiting to retry; "NextRetry" holds the time (RFC 3339)
 *   gave-up              Auto-Reconnect stopped trying (Gave Up fired)
 *   waiting-for-network  waiting for iom_instance_network(instance, 1)
 * The set may grow in a later version: treat any other word as unknown. A
 * module without the variable says nothing machine-readable about its
 * connection.
 * Free with iom_string_free(). NULL only if `instance` is NULL or not a live
 * instance (destroyed, or never created). */
char *iom_instance_status(iom_instance *instance);

/* Tell the instance the controller's network went down (0) or up (non-zero). */
int iom_instance_network(iom_instance *instance, int up);

/*
 * Flow control: the host has room again after refusing an event with
 * IOM_ERR_REJECTED from fire_trigger_flow. Returns at once (IOM_OK; the held
 * events are offered again from the module's thread, then reading resumes);
 * any thread, also from inside a callback. Harmless when nothing is held.
 * IOM_ERR_INVALID_ARGUMENT when `instance` is not a live instance.
 * Optional; a later addition to ABI 1.
 */
int iom_instance_resume(iom_instance *instance);

/*
 * Compile a project trigger's properties once (e.g. the Match String of
 * Messages Received). `instance` may be NULL; the prepared trigger does not
 * borrow it and stays valid until iom_trigger_free().
 */
iom_prepared_trigger *iom_trigger_prepare(iom_instance *instance, const char *trigger,
                                          const char *properties_json, char **error);

/*
 * Test fired trigger data against a prepared trigger. Returns 1 on a match
 * (and, when `variables` is not NULL, stores the trigger variables there;
 * free them with iom_variables_free()), 0 on no match, -1 on bad arguments.
 * Thread-safe; may be called concurrently on the same prepared trigger.
 */
int iom_trigger_test(const iom_prepared_trigger *prepared, const uint8_t *data, size_t len,
                     iom_variables **variables);

/* Like iom_trigger_test, with the flags fire_trigger_ex gave (so that, for
 * example, the Message Type variable says "binary"). iom_trigger_test is
 * iom_trigger_test_ex with flags 0. */
int iom_trigger_test_ex(const iom_prepared_trigger *prepared, const uint8_t *data, size_t len,
                        uint32_t flags, iom_variables **variables);

void iom_trigger_free(iom_prepared_trigger *prepared);

/* Optional (a host looks it up and does without it): how many variables
 * every match of this prepared trigger gives, so a host can refuse a wire
 * whose action uses a placeholder no variable fills (<3> where there are 2)
 * before anything fires. -1 when the number varies with the data or the
 * handle is not a prepared trigger. */
ptrdiff_t iom_trigger_variable_count(const iom_prepared_trigger *prepared);

/* Optional: what each variable of this prepared trigger's matches is, for a
 * controller's placeholder list: a JSON array of names, variable 1 first,
 * e.g. ["Message","room (regex group 1)","Message Type"]. Free with
 * iom_string_free(). NULL when the handle is not a prepared trigger. */
char *iom_trigger_variable_names(const iom_prepared_trigger *prepared);

/* Optional: what an action would do with these variables, without running
 * it and without an instance (a controller's live test of a wire): a JSON
 * object of every property of the action, given or default, with <1>, <2>
 * ... filled from `variables`; a non-empty secret property reads
 * "(secret)". NULL with `error` when running it would be refused (a bad
 * property; hex the variables make invalid). Free with iom_string_free(). */
char *iom_action_preview(const char *action, const char *properties_json,
                         const iom_str *variables, size_t n_variables, char **error);

/* Trigger variables: variable number n is index n-1. */
size_t iom_variables_count(const iom_variables *variables);
/* Borrowed from `variables`; {NULL, 0} when the index is out of range. */
iom_str iom_variables_get(const iom_variables *variables, size_t index);
void iom_variables_free(iom_variables *variables);

/* Free a string returned by the module. NULL is ignored. */
void iom_string_free(char *s);

#ifdef __cplusplus
}
#endif

#endif /* IOM_H */
