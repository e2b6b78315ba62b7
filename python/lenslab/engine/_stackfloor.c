/*
 * lenslab.engine._stackfloor: the bottom frame of every greenlet the engine starts.
 *
 * Why this exists (see engine/stacks.py for the whole story): a greenlet runs on the thread's
 * own C stack, on top of the frames of whoever switched into it first. Once that caller moves
 * on, the memory above the greenlet's first frame holds someone else's frames, so a native
 * stack walk that starts inside the greenlet (glibc's backtrace(), which torch calls for every
 * c10::Error, or a C++ exception looking for its handler) reads garbage there and can crash
 * the process. floor(f, *args) calls f(*args) from a frame whose unwind information says
 * "there is no caller" (the return address is undefined, as in a thread's or _start's first
 * frame), so every such walk ends here, cleanly, instead of wandering off the greenlet.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#if defined(__GNUC__) && defined(__x86_64__)
#define LENSLAB_END_OF_STACK() __asm__ volatile(".cfi_undefined rip" ::: "memory")
#elif defined(__GNUC__) && defined(__aarch64__)
#define LENSLAB_END_OF_STACK() __asm__ volatile(".cfi_undefined x30" ::: "memory")
#elif defined(__GNUC__) && defined(__i386__)
#define LENSLAB_END_OF_STACK() __asm__ volatile(".cfi_undefined eip" ::: "memory")
#else
#define LENSLAB_END_OF_STACK() ((void)0) /* no DWARF unwinding to stop on this platform */
#endif

/* Compilers may turn the call below into a jump, which would drop this frame: keep it. */
#if defined(__GNUC__)
#define LENSLAB_KEEP_FRAME() __asm__ volatile("" ::: "memory")
#else
#define LENSLAB_KEEP_FRAME() ((void)0)
#endif

static PyObject *
floor_call(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    LENSLAB_END_OF_STACK();
    if (nargs < 1) {
        PyErr_SetString(PyExc_TypeError, "floor(function, *args) needs a function");
        return NULL;
    }
    PyObject *result = PyObject_Vectorcall(args[0], args + 1, (size_t)(nargs - 1), NULL);
    LENSLAB_KEEP_FRAME();
    return result;
}

static PyMethodDef floor_methods[] = {
    {"floor", (PyCFunction)(void (*)(void))floor_call, METH_FASTCALL,
     "floor(function, *args): call function(*args) from a frame that ends native stack walks."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef floor_module = {
    PyModuleDef_HEAD_INIT, "_stackfloor",
    "The bottom frame of the engine's greenlets: native stack walks end there.", -1,
    floor_methods,
};

PyMODINIT_FUNC
PyInit__stackfloor(void)
{
    return PyModule_Create(&floor_module);
}
