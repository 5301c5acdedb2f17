/* Optional C accelerators of t9k_em_core.metrics, each the same as a Python function there (which
 * runs where this module could not be built); tests check that both give the same results.
 *
 * pack(templates, type, metrics, step, epoch) -> bytes or None        (metrics._pack_py)
 *   The buffered record of one Run.log call on the fast path: `metrics` an exact dict whose
 *   (type, key tuple) is in `templates`, `step` an int in [0, 2**63), `epoch` None or such an
 *   int, every value convertible by float() as struct's 'd' converts it. The record is the
 *   template's struct layout: template id, step, epoch (-1 for None), time in microseconds since
 *   the epoch (int64, native order), then each value (double). Anything else gives None, and
 *   metrics.MetricWriter then takes its slow path (a new template, or an error naming the problem).
 *
 * interleave(pieces, columns, count) -> bytes                          (metrics._interleave_py)
 *   pieces:  a tuple of n + 1 bytes, the constant text of an entry around its n tokens;
 *   columns: a tuple of n bytes, each the comma-separated tokens of one field of `count` entries;
 *   returns, for each entry i in turn:
 *     pieces[0] + token i of columns[0] + pieces[1] + ... + token i of columns[n-1] + pieces[n].
 *   No object per token; the copy runs without the GIL, so the training thread goes on meanwhile.
 *   A column that does not hold `count` tokens raises ValueError. Tokens never contain commas
 *   (numbers, null, timestamps).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <string.h>
#include <time.h>

#define HEAD 4 /* record fields before the values: template id, step, epoch, time */

static PyObject *tid_name; /* "tid", interned once */

/* `value` as a non-negative int64 in *out, if it is an exact int in [0, 2**63). */
static int
index_of(PyObject *value, long long *out)
{
    if (!PyLong_CheckExact(value))
        return 0;
    int overflow;
    *out = PyLong_AsLongLongAndOverflow(value, &overflow);
    return !overflow && *out >= 0; /* -1 with an error cannot happen for an exact int */
}

static PyObject *
pack(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 5 || !PyDict_CheckExact(args[0])) {
        PyErr_SetString(PyExc_TypeError, "pack(templates: dict, type, metrics, step, epoch)");
        return NULL;
    }
    PyObject *templates = args[0], *type = args[1], *metrics = args[2];
    long long head[HEAD];
    if (!PyDict_CheckExact(metrics) || !index_of(args[3], &head[1]))
        Py_RETURN_NONE;
    if (args[4] == Py_None)
        head[2] = -1;
    else if (!index_of(args[4], &head[2]))
        Py_RETURN_NONE;
    Py_ssize_t n = PyDict_GET_SIZE(metrics);
    /* keys and values, held: converting a value may run Python code that changes the dict */
    PyObject *keys = PyTuple_New(n), *values = PyTuple_New(n), *key = NULL, *record = NULL;
    if (keys == NULL || values == NULL)
        goto done;
    Py_ssize_t pos = 0, i = 0;
    PyObject *k, *v;
    while (i < n && PyDict_Next(metrics, &pos, &k, &v)) {
        Py_INCREF(k);
        PyTuple_SET_ITEM(keys, i, k);
        Py_INCREF(v);
        PyTuple_SET_ITEM(values, i, v);
        i++;
    }
    key = PyTuple_Pack(2, type, keys);
    if (key == NULL)
        goto done;
    PyObject *template = PyDict_GetItemWithError(templates, key); /* borrowed */
    if (template == NULL) {
        if (!PyErr_Occurred() || PyErr_ExceptionMatches(PyExc_TypeError)) { /* unhashable type */
            PyErr_Clear();
            record = Py_NewRef(Py_None);
        }
        goto done;
    }
    Py_INCREF(template);
    PyObject *tid = PyObject_GetAttr(template, tid_name);
    Py_DECREF(template);
    if (tid == NULL)
        goto done;
    head[0] = PyLong_AsLongLong(tid);
    Py_DECREF(tid);
    if (head[0] == -1 && PyErr_Occurred())
        goto done;
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now); /* as time.time_ns() */
    head[3] = (long long)now.tv_sec * 1000000 + now.tv_nsec / 1000;
    record = PyBytes_FromStringAndSize(NULL, (HEAD + n) * 8);
    if (record == NULL)
        goto done;
    char *w = PyBytes_AS_STRING(record);
    memcpy(w, head, sizeof(head));
    for (i = 0; i < n; i++) {
        PyObject *value = PyTuple_GET_ITEM(values, i);
        double x = PyFloat_CheckExact(value) ? PyFloat_AS_DOUBLE(value) : PyFloat_AsDouble(value);
        if (x == -1.0 && PyErr_Occurred()) { /* not a number: the slow path names it */
            PyErr_Clear();
            Py_SETREF(record, Py_NewRef(Py_None));
            goto done;
        }
        memcpy(w + (HEAD + i) * 8, &x, 8);
    }
done:
    Py_XDECREF(key);
    Py_XDECREF(keys);
    Py_XDECREF(values);
    return record;
}

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
    {"pack", (PyCFunction)(void (*)(void))pack, METH_FASTCALL,
     "pack(templates, type, metrics, step, epoch) -> bytes or None: the record of one log call."},
    {"interleave", (PyCFunction)(void (*)(void))interleave, METH_FASTCALL,
     "interleave(pieces, columns, count) -> bytes: each entry's pieces and column tokens, in turn."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_speedups", "Optional C accelerators of t9k_em_core.metrics.", -1, methods,
};

PyMODINIT_FUNC
PyInit__speedups(void)
{
    tid_name = PyUnicode_InternFromString("tid");
    return tid_name == NULL ? NULL : PyModule_Create(&module);
}
