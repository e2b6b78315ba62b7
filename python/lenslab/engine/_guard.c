/*
 * lenslab.engine._guard: with-blocks whose cleanup no interrupt can skip.
 *
 * Why C: a KeyboardInterrupt (Ctrl-C, or any asynchronous exception) is raised at the first
 * instruction of whatever Python function runs next, so the first line of a Python __exit__,
 * or the line just before its try/finally, is a window where the cleanup never starts: hooks
 * stay on the model and the trace stays registered. Nothing written in Python closes that
 * window. Here __enter__ and __exit__ are C methods, and C code between two calls cannot be
 * interrupted: __exit__ calls self._exit(...) and then, whatever that raised, self._close();
 * a failed __enter__ (self._enter()) gets self._close() too. An interrupt that lands inside
 * _close makes it raise part-way, so it is called again: every step of _close must be
 * idempotent (engine/tracer.py says how). The first error wins and is raised after the
 * cleanup has finished; the cleanup is tried at most MAX_TRIES times, so an interrupt storm
 * cannot hang the process.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#define MAX_TRIES 64

static PyObject *str_enter, *str_exit, *str_close;

typedef struct {
    PyObject *type, *value, *traceback;
} Error;

/* Call self._close() until it returns; the first error it raised (if any) goes into *first. */
static void
close_fully(PyObject *self, Error *first)
{
    for (int tries = 0; tries < MAX_TRIES; tries++) {
        PyObject *done = PyObject_CallMethodNoArgs(self, str_close);
        if (done != NULL) {
            Py_DECREF(done);
            return;
        }
        Error error;
        PyErr_Fetch(&error.type, &error.value, &error.traceback);
        if (first->type == NULL) {
            *first = error;
        }
        else {
            Py_XDECREF(error.type);
            Py_XDECREF(error.value);
            Py_XDECREF(error.traceback);
        }
    }
}

static PyObject *
guard_enter(PyObject *self, PyObject *unused)
{
    PyObject *result = PyObject_CallMethodNoArgs(self, str_enter);
    if (result != NULL) {
        return result;
    }
    Error error, later = {NULL, NULL, NULL};
    PyErr_Fetch(&error.type, &error.value, &error.traceback);
    close_fully(self, &later);
    Py_XDECREF(later.type);
    Py_XDECREF(later.value);
    Py_XDECREF(later.traceback);
    PyErr_Restore(error.type, error.value, error.traceback);
    return NULL;
}

static PyObject *
guard_exit(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 3) {
        PyErr_SetString(PyExc_TypeError, "__exit__ takes (type, value, traceback)");
        return NULL;
    }
    PyObject *call[4] = {self, args[0], args[1], args[2]};
    PyObject *result = PyObject_VectorcallMethod(str_exit, call, 4, NULL);
    Error error = {NULL, NULL, NULL};
    if (result == NULL) {
        PyErr_Fetch(&error.type, &error.value, &error.traceback);
    }
    close_fully(self, &error);
    if (error.type != NULL) {
        Py_XDECREF(result);
        PyErr_Restore(error.type, error.value, error.traceback);
        return NULL;
    }
    return result;
}

static PyMethodDef guarded_methods[] = {
    {"__enter__", (PyCFunction)guard_enter, METH_NOARGS,
     "self._enter(); if it raises, self._close() runs to its end before the error goes on."},
    {"__exit__", (PyCFunction)(void (*)(void))guard_exit, METH_FASTCALL,
     "self._exit(type, value, traceback), then self._close() to its end, whatever happened."},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject Guarded = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "lenslab.engine._guard.Guarded",
    .tp_basicsize = sizeof(PyObject),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE,
    .tp_doc = "A with-block base: subclasses define _enter, _exit and an idempotent _close.",
    .tp_methods = guarded_methods,
    .tp_new = PyType_GenericNew,
};

static struct PyModuleDef guard_module = {
    PyModuleDef_HEAD_INIT, "_guard",
    "With-blocks whose cleanup no interrupt can skip (see the file's header).", -1, NULL,
};

PyMODINIT_FUNC
PyInit__guard(void)
{
    str_enter = PyUnicode_InternFromString("_enter");
    str_exit = PyUnicode_InternFromString("_exit");
    str_close = PyUnicode_InternFromString("_close");
    if (str_enter == NULL || str_exit == NULL || str_close == NULL) {
        return NULL;
    }
    if (PyType_Ready(&Guarded) < 0) {
        return NULL;
    }
    PyObject *module = PyModule_Create(&guard_module);
    if (module == NULL) {
        return NULL;
    }
    Py_INCREF(&Guarded);
    if (PyModule_AddObject(module, "Guarded", (PyObject *)&Guarded) < 0) {
        Py_DECREF(&Guarded);
        Py_DECREF(module);
        return NULL;
    }
    return module;
}
