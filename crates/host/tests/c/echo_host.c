/*
 * echo_host.c: the smallest controller written in C, to prove a non-Rust
 * host can drive an IO module through include/iom.h alone.
 *
 * Usage: echo_host <path to libwsio.so> <port of a demo server on 127.0.0.1>
 *
 * It loads the module with dlopen(), resolves every iom_* function with
 * dlsym() (their types are checked against iom.h at compile time), checks
 * that misuse is answered with errors rather than crashes, then runs one
 * project wiring in its own event loop:
 *
 *     WebSocket Established           -> Send Message "ping from C"
 *     Messages Received ("ping")      -> Send Message "pong: <1>"
 *
 * As iom.h requires, callbacks only copy the event into a mutex-protected
 * queue; the main thread pops events and makes every iom_* call. It exits 0
 * once "pong: ping from C" came back and the instance is destroyed, 1 on a
 * 10 s timeout or a failed step, 2 if any misuse check failed. It links
 * against nothing but libc, libpthread and libdl.
 */
#define _POSIX_C_SOURCE 200809L

#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "iom.h"

#define GOAL "pong: ping from C"
#define DEADLINE_SECONDS 10

/* ------------------------------------------------------------ the module */

/* The entry points' types, spelled out as a C11 host would; SAME_TYPE checks
 * each against its declaration in iom.h at compile time (the operand of
 * _Generic is not evaluated, so the module's symbols are not linked). */
typedef uint32_t (*abi_version_fn)(void);
typedef const char *(*module_manifest_fn)(void);
typedef iom_instance *(*instance_create_fn)(const iom_host_callbacks *, uint64_t, const char *,
                                            char **);
typedef int (*instance_destroy_fn)(iom_instance *);
typedef int (*instance_action_fn)(iom_instance *, const char *, const char *, const iom_str *,
                                  size_t, char **);
typedef char *(*instance_status_fn)(iom_instance *);
typedef int (*instance_network_fn)(iom_instance *, int);
typedef iom_prepared_trigger *(*trigger_prepare_fn)(iom_instance *, const char *, const char *,
                                                    char **);
typedef int (*trigger_test_fn)(const iom_prepared_trigger *, const uint8_t *, size_t,
                               iom_variables **);
typedef void (*trigger_free_fn)(iom_prepared_trigger *);
typedef size_t (*variables_count_fn)(const iom_variables *);
typedef iom_str (*variables_get_fn)(const iom_variables *, size_t);
typedef void (*variables_free_fn)(iom_variables *);
typedef void (*string_free_fn)(char *);

#define SAME_TYPE(name) \
    _Static_assert(_Generic(&iom_##name, name##_fn: 1, default: 0), "iom_" #name " type")
SAME_TYPE(abi_version);
SAME_TYPE(module_manifest);
SAME_TYPE(instance_create);
SAME_TYPE(instance_destroy);
SAME_TYPE(instance_action);
SAME_TYPE(instance_status);
SAME_TYPE(instance_network);
SAME_TYPE(trigger_prepare);
SAME_TYPE(trigger_test);
SAME_TYPE(trigger_free);
SAME_TYPE(variables_count);
SAME_TYPE(variables_get);
SAME_TYPE(variables_free);
SAME_TYPE(string_free);

static struct {
    abi_version_fn abi_version;
    module_manifest_fn module_manifest;
    instance_create_fn instance_create;
    instance_destroy_fn instance_destroy;
    instance_action_fn instance_action;
    instance_status_fn instance_status;
    instance_network_fn instance_network;
    trigger_prepare_fn trigger_prepare;
    trigger_test_fn trigger_test;
    trigger_free_fn trigger_free;
    variables_count_fn variables_count;
    variables_get_fn variables_get;
    variables_free_fn variables_free;
    string_free_fn string_free;
} iom;

/* dlsym returns an object pointer; POSIX guarantees it converts to a
 * function pointer, and memcpy keeps strict ISO C compilers quiet. */
#define LOAD(field)                                                        \
    do {                                                                   \
        void *symbol = dlsym(library, "iom_" #field);                     \
        if (symbol == NULL) {                                              \
            fprintf(stderr, "module does not export iom_%s\n", #field);  \
            return 0;                                                      \
        }                                                                  \
        memcpy(&iom.field, &symbol, sizeof symbol);                        \
    } while (0)

static int load_module(const char *path)
{
    /* Never dlclose()d: the module runs a thread of its own. */
    void *library = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (library == NULL) {
        fprintf(stderr, "dlopen %s: %s\n", path, dlerror());
        return 0;
    }
    LOAD(abi_version);
    LOAD(module_manifest);
    LOAD(instance_create);
    LOAD(instance_destroy);
    LOAD(instance_action);
    LOAD(instance_status);
    LOAD(instance_network);
    LOAD(trigger_prepare);
    LOAD(trigger_test);
    LOAD(trigger_free);
    LOAD(variables_count);
    LOAD(variables_get);
    LOAD(variables_free);
    LOAD(string_free);
    return 1;
}

/* ------------------------------------------------------------ the event queue */

enum event_kind { EVENT_TRIGGER, EVENT_STATUS, EVENT_LOG };

/* One callback, copied: the pointers a callback gets die with the call. */
struct event {
    enum event_kind kind;
    char *name;  /* trigger name, status key, or log message */
    char *value; /* status value */
    unsigned char *data;
    size_t len;
    int level;
    struct event *next;
};

static pthread_mutex_t queue_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t queue_changed;
static struct event *queue_head;
static struct event **queue_tail = &queue_head;
static int destroyed;      /* set once iom_instance_destroy has returned */
static int late_callbacks; /* callbacks after that: a broken promise */
static int lost_events;    /* out of memory while copying an event */

static char *copy_text(const char *s)
{
    if (s == NULL)
        s = "(null)";
    size_t n = strlen(s) + 1;
    char *copy = malloc(n);
    if (copy != NULL)
        memcpy(copy, s, n);
    return copy;
}

static void free_event(struct event *e)
{
    free(e->name);
    free(e->value);
    free(e->data);
    free(e);
}

static void push(struct event *e)
{
    pthread_mutex_lock(&queue_lock);
    if (destroyed)
        late_callbacks++;
    if (e == NULL) {
        lost_events++;
    } else {
        e->next = NULL;
        *queue_tail = e;
        queue_tail = &e->next;
    }
    pthread_cond_signal(&queue_changed);
    pthread_mutex_unlock(&queue_lock);
}

/* Waits for the next event until `deadline` (CLOCK_MONOTONIC); NULL on timeout. */
static struct event *pop(const struct timespec *deadline)
{
    struct event *e = NULL;
    pthread_mutex_lock(&queue_lock);
    while (queue_head == NULL) {
        if (pthread_cond_timedwait(&queue_changed, &queue_lock, deadline) == ETIMEDOUT)
            break;
    }
    if (queue_head != NULL) {
        e = queue_head;
        queue_head = e->next;
        if (queue_head == NULL)
            queue_tail = &queue_head;
    }
    pthread_mutex_unlock(&queue_lock);
    return e;
}

/* ------------------------------------------------------------ the callbacks */

static void on_fire_trigger(void *user_data, uint64_t instance_id, const char *trigger,
                            const uint8_t *data, size_t len)
{
    (void)user_data;
    (void)instance_id;
    struct event *e = calloc(1, sizeof *e);
    if (e != NULL) {
        e->kind = EVENT_TRIGGER;
        e->name = copy_text(trigger);
        e->data = malloc(len + 1);
        if (e->name == NULL || e->data == NULL) {
            free_event(e);
            e = NULL;
        } else {
            if (len > 0)
                memcpy(e->data, data, len);
            e->data[len] = '\0';
            e->len = len;
        }
    }
    push(e);
}

static void on_status_changed(void *user_data, uint64_t instance_id, const char *key,
                              const char *value, const char *timestamp)
{
    (void)user_data;
    (void)instance_id;
    (void)timestamp;
    struct event *e = calloc(1, sizeof *e);
    if (e != NULL) {
        e->kind = EVENT_STATUS;
        e->name = copy_text(key);
        e->value = copy_text(value);
    }
    push(e);
}

static void on_log(void *user_data, uint64_t instance_id, iom_log_level level, const char *message)
{
    (void)user_data;
    (void)instance_id;
    struct event *e = calloc(1, sizeof *e);
    if (e != NULL) {
        e->kind = EVENT_LOG;
        e->level = (int)level;
        e->name = copy_text(message);
    }
    push(e);
}

/* ------------------------------------------------------------ misuse */

static int misuse_failures;

/* Prints a result with the module's error string, and frees the string. */
static void show(const char *what, const char *result, char *error)
{
    printf("misuse: %s -> %s (%s)\n", what, result, error != NULL ? error : "no message");
    iom.string_free(error);
}

static void expect_code(const char *what, int code, int expected, char *error)
{
    char result[16];
    snprintf(result, sizeof result, "%d", code);
    show(what, result, error);
    if (code != expected || (code != IOM_OK && error == NULL)) {
        printf("MISUSE FAILED: %s: expected %d with a message\n", what, expected);
        misuse_failures++;
    }
}

static void expect_null(const char *what, const void *result, char *error)
{
    show(what, result == NULL ? "NULL" : "a handle", error);
    if (result != NULL || error == NULL) {
        printf("MISUSE FAILED: %s: expected NULL and a message\n", what);
        misuse_failures++;
    }
}

static void check(const char *what, int ok)
{
    printf("misuse: %s -> %s\n", what, ok ? "ok" : "WRONG");
    if (!ok)
        misuse_failures++;
}

/* Misuse a careless controller might commit; every one must come back as
 * an error (or a documented no-op), never a crash or a false IOM_OK. */
static void misuse(const iom_host_callbacks *callbacks, iom_instance *instance)
{
    char *error = NULL;
    void *result;

    result = iom.instance_create(NULL, 1, "{\"Hostname\":\"127.0.0.1\"}", &error);
    expect_null("create with NULL callbacks", result, error);

    error = NULL;
    result = iom.instance_create(callbacks, 2, "{\"Hostname\":\"h\xff\xfe\"}", &error);
    expect_null("create with invalid UTF-8 in the properties", result, error);

    error = NULL;
    result = iom.instance_create(callbacks, 3, "{\"Port\": 70000", &error);
    expect_null("create with malformed JSON", result, error);

    result = iom.instance_create(callbacks, 4, "not json", NULL);
    check("create with bad JSON and a NULL error pointer", result == NULL);

    error = NULL;
    int code = iom.instance_action(NULL, "Connect", NULL, NULL, 0, &error);
    expect_code("action on a NULL instance", code, IOM_ERR_INVALID_ARGUMENT, error);

    error = NULL;
    code = iom.instance_action(instance, NULL, NULL, NULL, 0, &error);
    expect_code("NULL action name", code, IOM_ERR_INVALID_ARGUMENT, error);

    error = NULL;
    code = iom.instance_action(instance, "Explode", "{}", NULL, 0, &error);
    expect_code("unknown action", code, IOM_ERR_INVALID_ARGUMENT, error);

    error = NULL;
    code = iom.instance_action(instance, "Send Message", "{\"Message\":\"\xc3\"}", NULL, 0, &error);
    expect_code("invalid UTF-8 in action properties", code, IOM_ERR_INVALID_ARGUMENT, error);

    error = NULL;
    code = iom.instance_action(instance, "Send Message", "{\"Message\":\"x\"}", NULL, 2, &error);
    expect_code("NULL variables with a count", code, IOM_ERR_INVALID_ARGUMENT, error);

    error = NULL;
    code = iom.instance_action(instance, "Send Message", "{\"Message\":\"early\"}", NULL, 0, &error);
    expect_code("Send Message before Connect", code, IOM_ERR_REJECTED, error);

    error = NULL;
    result = iom.trigger_prepare(NULL, NULL, NULL, &error);
    expect_null("prepare a NULL trigger name", result, error);

    error = NULL;
    result = iom.trigger_prepare(NULL, "Messages Received", "{\"Match String\": 1}", &error);
    expect_null("prepare with a number as Match String", result, error);

    iom_variables *variables = (iom_variables *)&error; /* not NULL: must be cleared */
    check("test a NULL prepared trigger",
          iom.trigger_test(NULL, (const uint8_t *)"x", 1, &variables) == -1 && variables == NULL);

    check("status of NULL", iom.instance_status(NULL) == NULL);
    check("network of NULL", iom.instance_network(NULL, 1) == IOM_ERR_INVALID_ARGUMENT);
    check("destroy NULL", iom.instance_destroy(NULL) == IOM_OK);
    check("variables count of NULL", iom.variables_count(NULL) == 0);
    check("variables get of NULL", iom.variables_get(NULL, 0).ptr == NULL);
    iom.variables_free(NULL);
    iom.trigger_free(NULL);
    iom.string_free(NULL);
    check("NULL frees", 1);
}

/* ------------------------------------------------------------ the project */

/* Runs Send Message with a message template and the firing trigger's variables. */
static int send_message(iom_instance *instance, const char *template, const iom_str *variables,
                        size_t n_variables)
{
    char properties[256];
    snprintf(properties, sizeof properties, "{\"Message\":\"%s\"}", template);
    char *error = NULL;
    int code = iom.instance_action(instance, "Send Message", properties, variables, n_variables,
                                   &error);
    if (code != IOM_OK)
        printf("Send Message failed: %d (%s)\n", code, error != NULL ? error : "no message");
    iom.string_free(error);
    return code == IOM_OK;
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: %s <libwsio.so> <port>\n", argv[0]);
        return 1;
    }
    setvbuf(stdout, NULL, _IOLBF, 0);

    pthread_condattr_t attributes;
    pthread_condattr_init(&attributes);
    pthread_condattr_setclock(&attributes, CLOCK_MONOTONIC);
    pthread_cond_init(&queue_changed, &attributes);
    struct timespec deadline;
    clock_gettime(CLOCK_MONOTONIC, &deadline);
    deadline.tv_sec += DEADLINE_SECONDS;

    if (!load_module(argv[1]))
        return 1;
    printf("abi version %u\n", iom.abi_version());
    if (iom.abi_version() != IOM_ABI_VERSION) {
        printf("this host speaks ABI version %u\n", IOM_ABI_VERSION);
        return 1;
    }
    if (strstr(iom.module_manifest(), "name = \"WebSocket Client\"") == NULL) {
        printf("unexpected manifest\n");
        return 1;
    }

    iom_host_callbacks callbacks;
    memset(&callbacks, 0, sizeof callbacks);
    callbacks.struct_size = sizeof callbacks;
    callbacks.abi_version = IOM_ABI_VERSION;
    callbacks.fire_trigger = on_fire_trigger;
    callbacks.status_changed = on_status_changed;
    callbacks.log = on_log;

    char properties[256];
    snprintf(properties, sizeof properties,
             "{\"Hostname\":\"127.0.0.1\",\"Port\":%s,"
             "\"Path\":\"/v3/1?api_key=demo&notify_self=1\"}",
             argv[2]);
    char *error = NULL;
    iom_instance *instance = iom.instance_create(&callbacks, 7, properties, &error);
    if (instance == NULL) {
        printf("create failed: %s\n", error != NULL ? error : "no message");
        return 1;
    }
    iom_prepared_trigger *pings =
        iom.trigger_prepare(instance, "Messages Received", "{\"Match String\":\"ping\"}", &error);
    if (pings == NULL) {
        printf("prepare failed: %s\n", error != NULL ? error : "no message");
        return 1;
    }

    misuse(&callbacks, instance);
    printf("misuse checks %s\n", misuse_failures == 0 ? "passed" : "FAILED");

    if (iom.instance_action(instance, "Connect", NULL, NULL, 0, &error) != IOM_OK) {
        printf("Connect failed: %s\n", error != NULL ? error : "no message");
        return 1;
    }

    /* The event loop: the only place iom_* is called while events flow. */
    int done = 0, failed = 0;
    while (!done && !failed) {
        struct event *e = pop(&deadline);
        if (e == NULL) {
            printf("timeout: no \"%s\" within %d s\n", GOAL, DEADLINE_SECONDS);
            failed = 1;
            break;
        }
        switch (e->kind) {
        case EVENT_LOG:
            printf("log %d: %s\n", e->level, e->name);
            break;
        case EVENT_STATUS:
            printf("status %s = %s\n", e->name, e->value);
            break;
        case EVENT_TRIGGER:
            printf("trigger %s\n", e->name);
            if (strcmp(e->name, "WebSocket Established") == 0) {
                printf("established\n");
                failed = !send_message(instance, "ping from C", NULL, 0);
            } else if (strcmp(e->name, "Messages Received") == 0) {
                printf("received: %.*s\n", (int)e->len, (const char *)e->data);
                if (e->len == strlen(GOAL) && memcmp(e->data, GOAL, e->len) == 0) {
                    done = 1; /* our pong contains "ping" too: stop the wiring here */
                    break;
                }
                iom_variables *variables = NULL;
                int match = iom.trigger_test(pings, e->data, e->len, &variables);
                if (match == 1) {
                    iom_str message = iom.variables_get(variables, 0);
                    failed = !send_message(instance, "pong: <1>", &message, 1);
                    iom.variables_free(variables);
                } else if (match != 0) {
                    printf("trigger test failed: %d\n", match);
                    failed = 1;
                }
            } else if (strcmp(e->name, "Disconnected") == 0) {
                printf("disconnected before the pong: %.*s\n", (int)e->len, (const char *)e->data);
                failed = 1;
            }
            break;
        }
        free_event(e);
    }

    char *status = iom.instance_status(instance);
    printf("status %s\n", status != NULL ? status : "(null)");
    iom.string_free(status);

    int destroy = iom.instance_destroy(instance);
    pthread_mutex_lock(&queue_lock);
    destroyed = 1;
    pthread_mutex_unlock(&queue_lock);
    printf("destroyed: %d\n", destroy);
    iom.trigger_free(pings);

    /* Whatever arrived before destroy returned is still queued: drain it. */
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    struct event *e;
    while ((e = pop(&now)) != NULL) {
        if (e->kind == EVENT_TRIGGER)
            printf("trigger %s\n", e->name);
        free_event(e);
    }
    /* A second destroy of the same handle is an error, not a crash. */
    check("destroy twice", iom.instance_destroy(instance) == IOM_ERR_INVALID_ARGUMENT);

    pthread_mutex_lock(&queue_lock);
    int late = late_callbacks, lost = lost_events;
    pthread_mutex_unlock(&queue_lock);
    if (late != 0 || lost != 0) {
        printf("%d callbacks after destroy, %d events lost\n", late, lost);
        failed = 1;
    }
    if (destroy != IOM_OK)
        failed = 1;
    if (failed)
        return 1;
    if (misuse_failures != 0)
        return 2;
    printf("done\n");
    return 0;
}
