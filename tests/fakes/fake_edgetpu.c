/* A stand-in for libedgetpu, built by tests/test_edgetpu_probe.py with the C compiler.
 *
 * This machine has no Coral, so the tests point EDGECNN_EDGETPU_LIB at builds of this file to drive the
 * production loader through each way a real libedgetpu fails. Compile-time switches:
 *   -DCREATE_SEGV     tflite_plugin_create_delegate raises SIGSEGV (a libedgetpu built for another TF)
 *   -DCREATE_NULL     it reports an error and returns NULL (what libedgetpu does when no TPU is found)
 *   -DCREATE_HANG     it never returns
 *   -DPREPARE_SEGV    the delegate is created; its Prepare (run while allocating the model) raises SIGSEGV
 *   -DNO_CREATE       the library exports no tflite_plugin_create_delegate at all
 *   -DVERSION="..."   edgetpu_version() returns this string (otherwise the symbol is absent)
 * With none of CREATE_* / PREPARE_SEGV the delegate is valid and claims no nodes: the model runs on the CPU.
 */
#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>

/* TfLiteDelegate from tensorflow/lite/core/c/common.h; only Prepare is ever called here. */
typedef struct FakeDelegate {
    void *data_;
    int (*Prepare)(void *context, struct FakeDelegate *delegate);
    void *CopyFromBufferHandle;
    void *CopyToBufferHandle;
    void *FreeBufferHandle;
    int64_t flags;
    void *opaque_delegate_builder;
} FakeDelegate;

#ifdef VERSION
const char *edgetpu_version(void) { return VERSION; }
#endif

__attribute__((unused)) static int prepare(void *context, FakeDelegate *delegate) {
    (void)context;
    (void)delegate;
#ifdef PREPARE_SEGV
    raise(SIGSEGV);
#endif
    return 0; /* kTfLiteOk: nothing delegated */
}

#ifndef NO_CREATE
void *tflite_plugin_create_delegate(char **keys, char **values, size_t count, void (*report)(const char *)) {
    (void)keys;
    (void)values;
    (void)count;
    (void)report;
#if defined(CREATE_SEGV)
    raise(SIGSEGV);
    return NULL;
#elif defined(CREATE_NULL)
    report("fake libedgetpu: no Edge TPU device found");
    return NULL;
#elif defined(CREATE_HANG)
    for (;;) pause();
#else
    FakeDelegate *delegate = calloc(1, sizeof(FakeDelegate));
    if (delegate) delegate->Prepare = prepare;
    return delegate;
#endif
}

void tflite_plugin_destroy_delegate(void *delegate) { free(delegate); }
#endif
