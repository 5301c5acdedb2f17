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
    Py_ssize_t total = 0; /* the size when every column holds `count` tokens */
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
    if (total < 0) { /* a column shorter than its commas alone */
        PyErr_Format(PyExc_ValueError, "interleave: a column does not hold %zd tokens", count);
        goto done;
    }
    out = PyBytes_FromStringAndSize(NULL, total);
    if (out == NULL)
        goto done;
    const span *piece = spans;
    span *column = spans + n + 1;
    char *w = PyBytes_AS_STRING(out), *const w_end = w + total;
    int fits = 1;
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t i = 0; i < count && fits; i++) {
        for (Py_ssize_t j = 0; j <= n; j++) {
            Py_ssize_t size = piece[j].end - piece[j].start;
            if (w_end - w < size) {
                fits = 0;
                break;
            }
            memcpy(w, piece[j].start, size);
            w += size;
            if (j == n)
                break;
            /* one token: up to the next comma, or the column's end (then the cursor passes it) */
            const char *src = column[j].start, *end = column[j].end;
            const char *stop = src > end ? NULL : memchr(src, ',', end - src);
            if (stop == NULL)
                stop = end;
            if (src > end || w_end - w < stop - src) {
                fits = 0; /* the column ran out of tokens, or holds too long a text */
                break;
            }
            memcpy(w, src, stop - src);
            w += stop - src;
            column[j].start = stop + 1;
        }
    }
    Py_END_ALLOW_THREADS
    for (Py_ssize_t j = 0; j < n && fits; j++)
        fits = column[j].start == column[j].end + 1; /* its last token ended the column */
    if (!fits || w != w_end) {
        PyErr_Format(PyExc_ValueError, "interleave: a column does not hold %zd tokens", count);
        Py_CLEAR(out);
    }
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
