/* Optional C accelerator of t9k_em_core.metrics: the one step of spelling metric entries that
 * Python does token by token.
 *
 * interleave(pieces, columns, count) -> bytes
 *   pieces:  a tuple of n + 1 bytes, the constant text of an entry around its n tokens;
 *   columns: a tuple of n bytes, each the comma-separated tokens of one field of `count` entries;
 *   returns, for each entry i in turn:
 *     pieces[0] + token i of columns[0] + pieces[1] + ... + token i of columns[n-1] + pieces[n].
 *
 * The same as metrics._interleave_py, without an object per token; the copy runs without the GIL,
 * so the training thread goes on meanwhile. A column that does not hold `count` tokens raises
 * ValueError. Tokens never contain commas (numbers, null, timestamps).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <string.h>

typedef struct {
    const char *start, *end;
} span;

/* The number of commas in s. */
static Py_ssize_t
commas(span s)
{
    Py_ssize_t found = 0;
    for (const char *p = s.start; (p = memchr(p, ',', s.end - p)) != NULL; p++)
        found++;
    return found;
}

static PyObject *
interleave(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 3 || !PyTuple_Check(args[0]) || !PyTuple_Check(args[1])) {
        PyErr_SetString(PyExc_TypeError, "interleave(pieces: tuple, columns: tuple, count: int)");
        return NULL;
    }
    PyObject *pieces = args[0], *columns = args[1];
    Py_ssize_t n = PyTuple_GET_SIZE(columns);
    Py_ssize_t count = PyLong_AsSsize_t(args[2]);
    if (count == -1 && PyErr_Occurred())
        return NULL;
    if (PyTuple_GET_SIZE(pieces) != n + 1 || count < 1) {
        PyErr_SetString(PyExc_ValueError, "interleave: needs one piece more than columns, count >= 1");
        return NULL;
    }
    span *spans = PyMem_New(span, 2 * n + 1); /* pieces, then columns (their cursors) */
    if (spans == NULL)
        return PyErr_NoMemory();
    PyObject *out = NULL;
    Py_ssize_t total = 0;
    for (Py_ssize_t j = 0; j < 2 * n + 1; j++) {
        PyObject *item = j <= n ? PyTuple_GET_ITEM(pieces, j) : PyTuple_GET_ITEM(columns, j - n - 1);
        if (!PyBytes_Check(item)) {
            PyErr_SetString(PyExc_TypeError, "interleave: pieces and columns must be bytes");
            goto done;
        }
        spans[j].start = PyBytes_AS_STRING(item);
        spans[j].end = spans[j].start + PyBytes_GET_SIZE(item);
        total += j <= n ? PyBytes_GET_SIZE(item) * count : PyBytes_GET_SIZE(item) - (count - 1);
    }
    span *piece = spans, *column = spans + n + 1;
    Py_ssize_t bad = -1;
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t j = 0; j < n && bad < 0; j++)
        if (commas(column[j]) != count - 1)
            bad = j;
    Py_END_ALLOW_THREADS
    if (bad >= 0) {
        PyErr_Format(PyExc_ValueError, "interleave: column %zd does not hold %zd tokens", bad, count);
        goto done;
    }
    out = PyBytes_FromStringAndSize(NULL, total);
    if (out == NULL)
        goto done;
    char *w = PyBytes_AS_STRING(out);
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t i = 0; i < count; i++) {
        for (Py_ssize_t j = 0; j <= n; j++) {
            memcpy(w, piece[j].start, piece[j].end - piece[j].start);
            w += piece[j].end - piece[j].start;
            if (j == n)
                break;
            const char *start = column[j].start;
            const char *stop = i == count - 1 ? column[j].end : memchr(start, ',', column[j].end - start);
            memcpy(w, start, stop - start);
            w += stop - start;
            column[j].start = stop + 1;
        }
    }
    Py_END_ALLOW_THREADS
done:
    PyMem_Free(spans);
    return out;
}

static PyMethodDef methods[] = {
    {"interleave", (PyCFunction)(void (*)(void))interleave, METH_FASTCALL,
     "interleave(pieces, columns, count) -> bytes: each entry's pieces and column tokens, in turn."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_interleave", "Optional C accelerator of t9k_em_core.metrics.", -1, methods,
};

PyMODINIT_FUNC
PyInit__interleave(void)
{
    return PyModule_Create(&module);
}
