/* Compiled OTLP protobuf decoder + normaliser: ExportTraceServiceRequest bytes -> span-table columns.
 *
 * The pure-Python path (otlp_protobuf.py + normalize.py) is the reference; this module produces the
 * same columns for the common shapes and, for anything else, hands over to it:
 *   - the whole body, by raising Fallback: any wire-format doubt (bad or truncated data, group wire
 *     types, a known field with an unexpected wire type, an unknown field inside an attribute value,
 *     invalid UTF-8, nesting deeper than MAX_DEPTH), so errors and their messages are the reference's;
 *   - one span, by building its RawSpan and calling the Python row function: spans with events,
 *     keys starting with '@', partial cost keys, evaluation attributes or kind EVALUATOR;
 *   - one value, by calling the Python helper (_int, _float, _bool, _str, ...) whenever a typed
 *     column receives anything but the plain type it expects.
 * It is therefore strict where the reference is lenient and never the other way round; the
 * differential test (tests/telemetry/test_otlpfast.py) holds it to that.
 *
 * The JSON column is written here directly from the wire bytes (orjson's compact format and
 * escaping; doubles are formatted by orjson itself), so the large free-text attributes never become
 * Python objects. Every buffer is per call: helpers are Python code and may switch threads.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#define MAX_DEPTH 32
#define NCOLS 30
#define NSLOTS 17

enum { S_KIND, S_MODEL, S_PROVIDER, S_INPUT, S_OUTPUT, S_TOTAL, S_COST, S_ERROR, S_TOOL, S_STEP, S_SESSION,
       S_USER, S_FALLBACK, S_CACHE_HIT, S_TTFT, S_SERVER_TTFT, S_REQUEST };
enum { F_NONE, F_OPNAME, F_METADATA, F_SLOWSPAN, F_PARAMS };
enum { V_NONE, V_STR, V_BOOL, V_INT, V_DOUBLE, V_ARRAY, V_KVLIST, V_BYTES };

static PyObject *Fallback;
static int bail_line; /* where the last Fallback was decided (in its message, for diagnosis) */
#define BAIL (bail_line = __LINE__, -1)
/* Python helpers, set once by setup() */
static PyObject *h_str, *h_int, *h_float, *h_bool, *h_kind_text, *h_op_kinds, *h_parse_metadata, *h_resolved_text,
    *h_row_fallback, *h_rawspan, *h_dumps, *h_price_cost;
static PyObject *s_unset, *s_ok, *s_error, *s_empty, *s_default, *s_fallback, *s_cache, *s_none_text, *s_llm,
    *s_unknown, *s_evaluator, *s_service_name, *s_metadata;

/* ---------------------------------------------------------------- key table (slot keys and specials) */
typedef struct { const char *key; Py_ssize_t len; uint64_t hash; int slot, rank, flag; } KeyInfo;
#define KEYTAB 256
static KeyInfo keyinfo[128];
static int nkeys;
static int16_t keytab[KEYTAB]; /* index+1 into keyinfo, 0 empty */

static inline uint64_t fnv(const uint8_t *p, Py_ssize_t n) {
    uint64_t h = 1469598103934665603ULL;
    for (Py_ssize_t i = 0; i < n; i++) { h ^= p[i]; h *= 1099511628211ULL; }
    return h;
}

static const KeyInfo *key_lookup(const uint8_t *k, Py_ssize_t n, uint64_t h) {
    for (unsigned i = (unsigned)h & (KEYTAB - 1);; i = (i + 1) & (KEYTAB - 1)) {
        int j = keytab[i];
        if (!j) return NULL;
        const KeyInfo *ki = &keyinfo[j - 1];
        if (ki->hash == h && ki->len == n && memcmp(ki->key, k, n) == 0) return ki;
    }
}

static int key_add(PyObject *key, int slot, int rank, int flag) {
    Py_ssize_t n;
    const char *s = PyUnicode_AsUTF8AndSize(key, &n);
    if (!s) return BAIL;
    if (nkeys >= 128) { PyErr_SetString(PyExc_ValueError, "too many keys"); return BAIL; }
    char *copy = PyMem_RawMalloc(n + 1);
    if (!copy) { PyErr_NoMemory(); return BAIL; }
    memcpy(copy, s, n + 1);
    KeyInfo *ki = &keyinfo[nkeys];
    ki->key = copy; ki->len = n; ki->hash = fnv((const uint8_t *)copy, n);
    ki->slot = slot; ki->rank = rank; ki->flag = flag;
    unsigned i = (unsigned)ki->hash & (KEYTAB - 1);
    while (keytab[i]) i = (i + 1) & (KEYTAB - 1);
    keytab[i] = (int16_t)(++nkeys);
    return 0;
}

/* ---------------------------------------------------------------- wire format */
typedef struct { const uint8_t *p; Py_ssize_t n; } Buf;
typedef struct { uint32_t num; int wt; uint64_t v; const uint8_t *d; Py_ssize_t len; } Field;

static inline int rd_varint(const uint8_t **pp, const uint8_t *end, uint64_t *out) {
    const uint8_t *p = *pp;
    uint64_t v = 0;
    for (int i = 0; i < 10; i++) {
        if (p >= end) return BAIL;
        uint8_t b = *p++;
        if (i == 9 && b > 1) return BAIL;
        v |= (uint64_t)(b & 0x7F) << (7 * i);
        if (!(b & 0x80)) { *pp = p; *out = v; return 0; }
    }
    return BAIL;
}

/* 1 = a field, 0 = end of message, -1 = not something this decoder accepts (Fallback) */
static inline int next_field(const uint8_t **pp, const uint8_t *end, Field *f) {
    if (*pp >= end) return 0;
    uint64_t tag;
    if (rd_varint(pp, end, &tag) || tag > 0xFFFFFFFFULL) return BAIL;
    f->num = (uint32_t)(tag >> 3);
    f->wt = (int)(tag & 7);
    if (f->num == 0 || f->num > 536870911u) return BAIL;
    const uint8_t *p = *pp;
    switch (f->wt) {
    case 0:
        if (rd_varint(pp, end, &f->v)) return BAIL;
        return 1;
    case 1:
        if (end - p < 8) return BAIL;
        memcpy(&f->v, p, 8);  /* little-endian hosts only (x86-64, aarch64) */
        *pp = p + 8;
        return 1;
    case 2: {
        uint64_t n;
        if (rd_varint(pp, end, &n)) return BAIL;
        if (n > (uint64_t)(end - *pp)) return BAIL;
        f->d = *pp; f->len = (Py_ssize_t)n;
        *pp += n;
        return 1;
    }
    case 5:
        if (end - p < 4) return BAIL;
        *pp = p + 4;
        return 1;
    default:
        return BAIL;
    }
}

/* Strict UTF-8 (Unicode table 3-7: no overlongs, surrogates or code points past U+10FFFF). */
static int utf8_ok(const uint8_t *s, Py_ssize_t n, int *ascii) {
    Py_ssize_t i = 0;
    while (i < n) {
        if (i + 8 <= n) {
            uint64_t w;
            memcpy(&w, s + i, 8);
            if (!(w & 0x8080808080808080ULL)) { i += 8; continue; }
        }
        uint8_t c = s[i];
        if (c < 0x80) { i++; continue; }
        *ascii = 0;
        int more; uint8_t lo = 0x80, hi = 0xBF;
        if (c >= 0xC2 && c <= 0xDF) more = 1;
        else if (c == 0xE0) { more = 2; lo = 0xA0; }
        else if ((c >= 0xE1 && c <= 0xEC) || c == 0xEE || c == 0xEF) more = 2;
        else if (c == 0xED) { more = 2; hi = 0x9F; }
        else if (c == 0xF0) { more = 3; lo = 0x90; }
        else if (c >= 0xF1 && c <= 0xF3) more = 3;
        else if (c == 0xF4) { more = 3; hi = 0x8F; }
        else return 0;
        if (i + more >= n) return 0;
        if (s[i + 1] < lo || s[i + 1] > hi) return 0;
        for (int k = 2; k <= more; k++)
            if ((s[i + k] & 0xC0) != 0x80) return 0;
        i += more + 1;
    }
    return 1;
}

/* ---------------------------------------------------------------- attribute values */
typedef struct { int type; const uint8_t *d; Py_ssize_t len; uint64_t v; int ascii; } AV;

static int check_kv(const uint8_t *p, Py_ssize_t n, Buf *key, Buf *val, int *has_val, int *key_ascii, int depth);

/* One AnyValue: at most one field, a known one with the expected wire type, nested values checked.
 * 0 ok, -1 Fallback. */
static int parse_av(const uint8_t *p, Py_ssize_t n, AV *av, int depth) {
    const uint8_t *end = p + n;
    Field f;
    int r, seen = 0;
    av->type = V_NONE;
    av->ascii = 1;
    if (depth > MAX_DEPTH) return BAIL;
    while ((r = next_field(&p, end, &f)) == 1) {
        if (seen++) return BAIL;
        switch (f.num) {
        case 1:
            if (f.wt != 2 || !utf8_ok(f.d, f.len, &av->ascii)) return BAIL;
            av->type = V_STR; av->d = f.d; av->len = f.len;
            break;
        case 2: if (f.wt != 0) return BAIL; av->type = V_BOOL; av->v = f.v; break;
        case 3: if (f.wt != 0) return BAIL; av->type = V_INT; av->v = f.v; break;
        case 4: if (f.wt != 1) return BAIL; av->type = V_DOUBLE; av->v = f.v; break;
        case 5: case 6: {
            if (f.wt != 2) return BAIL;
            const uint8_t *q = f.d, *qe = f.d + f.len;
            Field g;
            int s;
            while ((s = next_field(&q, qe, &g)) == 1) {
                if (g.num != 1 || g.wt != 2) return BAIL;
                if (f.num == 5) {
                    AV inner;
                    if (parse_av(g.d, g.len, &inner, depth + 1)) return BAIL;
                } else {
                    Buf k, v; int hv, ka;
                    if (check_kv(g.d, g.len, &k, &v, &hv, &ka, depth + 1)) return BAIL;
                }
            }
            if (s < 0) return BAIL;
            av->type = f.num == 5 ? V_ARRAY : V_KVLIST; av->d = f.d; av->len = f.len;
            break;
        }
        case 7: if (f.wt != 2) return BAIL; av->type = V_BYTES; av->d = f.d; av->len = f.len; break;
        default: return BAIL;
        }
    }
    return r < 0 ? -1 : 0;
}

/* One KeyValue: key (1) and value (2) at most once each, nothing else; key UTF-8, value checked. */
static int check_kv(const uint8_t *p, Py_ssize_t n, Buf *key, Buf *val, int *has_val, int *key_ascii, int depth) {
    const uint8_t *end = p + n;
    Field f;
    int r, has_key = 0;
    *has_val = 0;
    *key_ascii = 1;
    key->p = p; key->n = 0;
    while ((r = next_field(&p, end, &f)) == 1) {
        if (f.wt != 2) return BAIL;
        if (f.num == 1) {
            if (has_key++ || !utf8_ok(f.d, f.len, key_ascii)) return BAIL;
            key->p = f.d; key->n = f.len;
        } else if (f.num == 2) {
            AV av;
            if ((*has_val)++ || parse_av(f.d, f.len, &av, depth)) return BAIL;
            val->p = f.d; val->n = f.len;
        } else {
            return BAIL;
        }
    }
    return r < 0 ? -1 : 0;
}

/* ---------------------------------------------------------------- Python values (as pb_value) */
static PyObject *str_from(const uint8_t *d, Py_ssize_t n, int ascii) {
    if (ascii) {
        PyObject *s = PyUnicode_New(n, 127);
        if (s) memcpy(PyUnicode_DATA(s), d, n);
        return s;
    }
    return PyUnicode_DecodeUTF8((const char *)d, n, "strict");
}

static PyObject *b64_text(const uint8_t *d, Py_ssize_t n) {
    static const char al[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    Py_ssize_t m = (n + 2) / 3 * 4;
    PyObject *s = PyUnicode_New(m, 127);
    if (!s) return NULL;
    char *o = (char *)PyUnicode_DATA(s);
    Py_ssize_t i = 0;
    for (; i + 3 <= n; i += 3) {
        uint32_t x = (uint32_t)d[i] << 16 | (uint32_t)d[i + 1] << 8 | d[i + 2];
        *o++ = al[x >> 18]; *o++ = al[(x >> 12) & 63]; *o++ = al[(x >> 6) & 63]; *o++ = al[x & 63];
    }
    if (n - i == 1) {
        uint32_t x = (uint32_t)d[i] << 16;
        *o++ = al[x >> 18]; *o++ = al[(x >> 12) & 63]; *o++ = '='; *o++ = '=';
    } else if (n - i == 2) {
        uint32_t x = (uint32_t)d[i] << 16 | (uint32_t)d[i + 1] << 8;
        *o++ = al[x >> 18]; *o++ = al[(x >> 12) & 63]; *o++ = al[(x >> 6) & 63]; *o++ = '=';
    }
    return s;
}

static PyObject *kv_dict(const uint8_t *p, Py_ssize_t n, int depth);

static PyObject *py_av(const AV *av, int depth) {
    switch (av->type) {
    case V_STR: return str_from(av->d, av->len, av->ascii);
    case V_BOOL: return PyBool_FromLong(av->v != 0);
    case V_INT: return PyLong_FromLongLong((long long)(int64_t)av->v);
    case V_DOUBLE: { double x; memcpy(&x, &av->v, 8); return PyFloat_FromDouble(x); }
    case V_BYTES: return b64_text(av->d, av->len);
    case V_KVLIST: return kv_dict(av->d, av->len, depth + 1);
    case V_ARRAY: {
        PyObject *list = PyList_New(0);
        const uint8_t *q = av->d, *qe = av->d + av->len;
        Field g;
        while (list && next_field(&q, qe, &g) == 1) {
            AV inner;
            PyObject *x = NULL;
            if (parse_av(g.d, g.len, &inner, depth + 1) == 0) x = py_av(&inner, depth + 1);
            else PyErr_SetString(Fallback, "array value");
            if (!x || PyList_Append(list, x)) { Py_XDECREF(x); Py_CLEAR(list); break; }
            Py_DECREF(x);
        }
        return list;
    }
    default: Py_RETURN_NONE;
    }
}

static PyObject *py_kv_value(const uint8_t *p, Py_ssize_t n, int has_val, int depth) {
    AV av;
    if (!has_val) Py_RETURN_NONE;
    if (parse_av(p, n, &av, depth)) { PyErr_SetString(Fallback, "attribute value"); return NULL; }
    return py_av(&av, depth);
}

/* {key: value} from a sequence of encoded KeyValue (fields number 1 of p..n), the last duplicate winning */
static PyObject *kv_dict(const uint8_t *p, Py_ssize_t n, int depth) {
    PyObject *d = PyDict_New();
    const uint8_t *end = p + n;
    Field g;
    while (d && next_field(&p, end, &g) == 1) {
        Buf k, v; int hv, ka;
        if (check_kv(g.d, g.len, &k, &v, &hv, &ka, depth)) { PyErr_SetString(Fallback, "key value"); Py_CLEAR(d); break; }
        PyObject *key = str_from(k.p, k.n, ka);
        PyObject *val = key ? py_kv_value(v.p, v.n, hv, depth) : NULL;
        if (!val || PyDict_SetItem(d, key, val)) { Py_XDECREF(key); Py_XDECREF(val); Py_CLEAR(d); break; }
        Py_DECREF(key); Py_DECREF(val);
    }
    return d;
}

/* ---------------------------------------------------------------- JSON text (orjson's format) */
typedef struct { char *p; Py_ssize_t n, cap; int ascii; } Out;

static int out_grow(Out *o, Py_ssize_t extra) {
    if (o->n + extra <= o->cap) return 0;
    Py_ssize_t cap = o->cap ? o->cap : 1024;
    while (cap < o->n + extra) cap *= 2;
    char *p = PyMem_Realloc(o->p, cap);
    if (!p) { PyErr_NoMemory(); return BAIL; }
    o->p = p; o->cap = cap;
    return 0;
}

static inline int out_put(Out *o, const char *s, Py_ssize_t n) {
    if (out_grow(o, n)) return BAIL;
    memcpy(o->p + o->n, s, n);
    o->n += n;
    return 0;
}

static uint8_t escape_of[256]; /* 0: copy; 'u': \u00XX; else the short escape letter */

static int json_str(Out *o, const uint8_t *s, Py_ssize_t n, int ascii) {
    static const char hex[] = "0123456789abcdef";
    if (out_grow(o, n + 2)) return BAIL;
    if (!ascii) o->ascii = 0;
    o->p[o->n++] = '"';
    Py_ssize_t i = 0;
    while (i < n) {
        Py_ssize_t j = i;
        while (j < n && !escape_of[s[j]]) j++;
        if (out_put(o, (const char *)s + i, j - i)) return BAIL;
        if (j == n) break;
        uint8_t c = s[j], e = escape_of[c];
        if (e == 'u') {
            char u[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
            if (out_put(o, u, 6)) return BAIL;
        } else {
            char u[2] = {'\\', (char)e};
            if (out_put(o, u, 2)) return BAIL;
        }
        i = j + 1;
    }
    if (out_grow(o, 1)) return BAIL;
    o->p[o->n++] = '"';
    return 0;
}

static int json_pyobj(Out *o, PyObject *v) {
    PyObject *b = PyObject_CallOneArg(h_dumps, v);
    if (!b) return BAIL;
    int r = out_put(o, PyBytes_AS_STRING(b), PyBytes_GET_SIZE(b));
    /* orjson writes non-ASCII text as is */
    for (Py_ssize_t i = 0; i < PyBytes_GET_SIZE(b) && o->ascii; i++)
        if ((uint8_t)PyBytes_AS_STRING(b)[i] >= 0x80) o->ascii = 0;
    Py_DECREF(b);
    return r;
}

static int json_av(Out *o, const AV *av, int depth);

static int json_kvlist(Out *o, const uint8_t *p, Py_ssize_t n, int depth) {
    /* duplicate keys (the last value wins, at the first position) are left to the dict path */
    enum { MAXK = 64 };
    Buf keys[MAXK];
    int nk = 0, simple = 1;
    const uint8_t *q = p, *end = p + n;
    Field g;
    while (next_field(&q, end, &g) == 1) {
        Buf k, v; int hv, ka;
        if (check_kv(g.d, g.len, &k, &v, &hv, &ka, depth)) { PyErr_SetString(Fallback, "key value"); return BAIL; }
        if (nk == MAXK) { simple = 0; break; }
        for (int i = 0; i < nk && simple; i++)
            if (keys[i].n == k.n && memcmp(keys[i].p, k.p, k.n) == 0) simple = 0;
        keys[nk++] = k;
    }
    if (!simple) {
        PyObject *d = kv_dict(p, n, depth);
        if (!d) return BAIL;
        int r = json_pyobj(o, d);
        Py_DECREF(d);
        return r;
    }
    if (out_put(o, "{", 1)) return BAIL;
    int first = 1;
    q = p;
    while (next_field(&q, end, &g) == 1) {
        Buf k, v; int hv, ka;
        check_kv(g.d, g.len, &k, &v, &hv, &ka, depth);
        if (!first && out_put(o, ",", 1)) return BAIL;
        first = 0;
        if (json_str(o, k.p, k.n, ka) || out_put(o, ":", 1)) return BAIL;
        AV av;
        av.type = V_NONE;
        if (hv) parse_av(v.p, v.n, &av, depth);
        if (json_av(o, &av, depth + 1)) return BAIL;
    }
    return out_put(o, "}", 1);
}

static int json_av(Out *o, const AV *av, int depth) {
    char num[32];
    switch (av->type) {
    case V_STR: return json_str(o, av->d, av->len, av->ascii);
    case V_BOOL: return av->v ? out_put(o, "true", 4) : out_put(o, "false", 5);
    case V_INT: return out_put(o, num, snprintf(num, sizeof num, "%lld", (long long)(int64_t)av->v));
    case V_DOUBLE: case V_BYTES: {
        PyObject *x = py_av(av, depth);
        if (!x) return BAIL;
        int r = json_pyobj(o, x);
        Py_DECREF(x);
        return r;
    }
    case V_ARRAY: {
        if (out_put(o, "[", 1)) return BAIL;
        const uint8_t *q = av->d, *qe = av->d + av->len;
        Field g;
        int first = 1;
        while (next_field(&q, qe, &g) == 1) {
            AV inner;
            parse_av(g.d, g.len, &inner, depth + 1);
            if ((!first && out_put(o, ",", 1)) || json_av(o, &inner, depth + 1)) return BAIL;
            first = 0;
        }
        return out_put(o, "]", 1);
    }
    case V_KVLIST: return json_kvlist(o, av->d, av->len, depth + 1);
    default: return out_put(o, "null", 4);
    }
}

static PyObject *out_text(Out *o) {
    if (o->ascii) {
        PyObject *s = PyUnicode_New(o->n, 127);
        if (s) memcpy(PyUnicode_DATA(s), o->p, o->n);
        return s;
    }
    return PyUnicode_DecodeUTF8(o->p, o->n, "strict");
}

/* ---------------------------------------------------------------- per-call state */
typedef struct {
    Buf key; uint64_t hash; int key_ascii;
    Buf val; int has_val;
    AV av;
    const KeyInfo *ki;
    PyObject *py; /* materialised value, lazily */
} Attr;

typedef struct {
    Attr *attrs; Py_ssize_t nattrs, cap;
    int32_t *dedup; Py_ssize_t dedup_cap;
    Buf *evs; Py_ssize_t nevs, evcap;
    Out json;
    PyObject *cols[NCOLS];
    PyObject *evals;
    PyObject *reasons;
    Py_ssize_t count, rejected;
    PyObject *normalizer, *lookups[4], *now;
    int has_prices;
    /* current resource */
    PyObject *resource, *service, *resource_json;
    int res_ascii;
} Ctx;

static int push_buf(Buf **arr, Py_ssize_t *n, Py_ssize_t *cap, const uint8_t *p, Py_ssize_t len) {
    if (*n == *cap) {
        Py_ssize_t c = *cap ? *cap * 2 : 64;
        Buf *a = PyMem_Realloc(*arr, c * sizeof(Buf));
        if (!a) { PyErr_NoMemory(); return BAIL; }
        *arr = a; *cap = c;
    }
    (*arr)[*n].p = p; (*arr)[(*n)++].n = len;
    return 0;
}

static PyObject *attr_py(Attr *a) {
    if (!a->py) {
        a->py = a->has_val ? py_av(&a->av, 0) : (Py_INCREF(Py_None), Py_None);
    }
    return a->py;
}

static Attr *find_attr(Ctx *c, const uint8_t *k, Py_ssize_t n) {
    uint64_t h = fnv(k, n);
    for (Py_ssize_t i = 0; i < c->nattrs; i++) {
        Attr *a = &c->attrs[i];
        if (a->hash == h && a->key.n == n && memcmp(a->key.p, k, n) == 0) return a;
    }
    return NULL;
}

/* Parse the span's KeyValue entries into c->attrs, one per key (the last value wins at the first
 * position, as in a dict). -1 = Fallback. */
static int load_attrs(Ctx *c, const Buf *entries, Py_ssize_t n) {
    c->nattrs = 0;
    if (n > c->cap) {
        Attr *a = PyMem_Realloc(c->attrs, n * sizeof(Attr));
        if (!a) { PyErr_NoMemory(); return -2; }
        c->attrs = a; c->cap = n;
    }
    Py_ssize_t tsize = 16;
    while (tsize < 2 * n) tsize *= 2;
    if (tsize > c->dedup_cap) {
        int32_t *t = PyMem_Realloc(c->dedup, tsize * sizeof(int32_t));
        if (!t) { PyErr_NoMemory(); return -2; }
        c->dedup = t; c->dedup_cap = tsize;
    }
    memset(c->dedup, 0, tsize * sizeof(int32_t));
    for (Py_ssize_t i = 0; i < n; i++) {
        Buf k, v; int hv, ka;
        if (check_kv(entries[i].p, entries[i].n, &k, &v, &hv, &ka, 0)) return BAIL;
        uint64_t h = fnv(k.p, k.n);
        Attr *slot = NULL;
        Py_ssize_t j = (Py_ssize_t)(h & (tsize - 1));
        for (;; j = (j + 1) & (tsize - 1)) {
            int32_t e = c->dedup[j];
            if (!e) break;
            Attr *o = &c->attrs[e - 1];
            if (o->hash == h && o->key.n == k.n && memcmp(o->key.p, k.p, k.n) == 0) { slot = o; break; }
        }
        if (!slot) {
            slot = &c->attrs[c->nattrs++];
            c->dedup[j] = (int32_t)c->nattrs;
            slot->key = k; slot->hash = h; slot->key_ascii = ka;
            slot->ki = key_lookup(k.p, k.n, h);
        }
        slot->val = v; slot->has_val = hv; slot->py = NULL;
        slot->av.type = V_NONE;
        if (hv && parse_av(v.p, v.n, &slot->av, 0)) return BAIL;
    }
    return 0;
}

static void drop_attrs(Ctx *c) {
    for (Py_ssize_t i = 0; i < c->nattrs; i++) Py_CLEAR(c->attrs[i].py);
}

/* ---------------------------------------------------------------- typed-column helpers */
static inline int is_empty(const Attr *a) {
    return !a->has_val || a->av.type == V_NONE || (a->av.type == V_STR && a->av.len == 0) ||
           (a->av.type == V_BYTES && a->av.len == 0);
}

/* new reference; v borrowed (may be NULL = absent = None) */
static PyObject *col_str(PyObject *v) {
    if (!v || v == Py_None) Py_RETURN_NONE;
    if (PyUnicode_CheckExact(v) && PyUnicode_FindChar(v, 0, 0, PyUnicode_GET_LENGTH(v), 1) == -1) {
        Py_INCREF(v);
        return v;
    }
    return PyObject_CallOneArg(h_str, v);
}

static PyObject *col_int(PyObject *v) {
    if (!v || v == Py_None) Py_RETURN_NONE;
    if (PyLong_CheckExact(v)) { Py_INCREF(v); return v; }
    return PyObject_CallOneArg(h_int, v);
}

static PyObject *col_float(PyObject *v) {
    if (!v || v == Py_None) Py_RETURN_NONE;
    if (PyFloat_CheckExact(v) && isfinite(PyFloat_AS_DOUBLE(v))) { Py_INCREF(v); return v; }
    return PyObject_CallOneArg(h_float, v);
}

/* _bool(v) as -1 (None), 0, 1; -2 on error */
static int col_bool(PyObject *v) {
    if (!v || v == Py_None) return BAIL;
    if (v == Py_True) return 1;
    if (v == Py_False) return 0;
    PyObject *r = PyObject_CallOneArg(h_bool, v);
    if (!r) return -2;
    int b = r == Py_None ? -1 : r == Py_True;
    Py_DECREF(r);
    return b;
}

static PyObject *hex_text(const Buf *b) {
    static const char hex[] = "0123456789abcdef";
    if (b->n == 0) { Py_INCREF(s_empty); return s_empty; }
    PyObject *s = PyUnicode_New(b->n * 2, 127);
    if (!s) return NULL;
    char *o = (char *)PyUnicode_DATA(s);
    for (Py_ssize_t i = 0; i < b->n; i++) { o[2 * i] = hex[b->p[i] >> 4]; o[2 * i + 1] = hex[b->p[i] & 15]; }
    return s;
}

/* _resolve(): new reference to the text or NULL with no error set when nothing matched; -1 in *err */
static PyObject *resolve(Ctx *c, PyObject *lookups, PyObject **meta, PyObject **rmeta, int *err) {
    Py_ssize_t n = PyTuple_GET_SIZE(lookups);
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *lk = PyTuple_GET_ITEM(lookups, i); /* (key bytes, key str, meta key str|None, resource only) */
        PyObject *kb = PyTuple_GET_ITEM(lk, 0), *ks = PyTuple_GET_ITEM(lk, 1), *mk = PyTuple_GET_ITEM(lk, 2);
        int res_only = PyTuple_GET_ITEM(lk, 3) == Py_True;
        PyObject *v = NULL; /* borrowed */
        if (res_only) {
            v = PyDict_GetItemWithError(c->resource, ks);
        } else {
            Attr *a = find_attr(c, (const uint8_t *)PyBytes_AS_STRING(kb), PyBytes_GET_SIZE(kb));
            if (a) { v = attr_py(a); if (!v) { *err = 1; return NULL; } }
            if (!v || v == Py_None) {
                v = PyDict_GetItemWithError(c->resource, ks);
                if (!v && !PyErr_Occurred() && mk != Py_None) {
                    if (!*meta) {
                        Attr *m = find_attr(c, (const uint8_t *)"metadata", 8);
                        PyObject *mv = m ? attr_py(m) : Py_None;
                        if (!mv) { *err = 1; return NULL; }
                        *meta = PyObject_CallOneArg(h_parse_metadata, mv);
                        if (!*meta) { *err = 1; return NULL; }
                    }
                    if (!PyDict_Check(*meta)) { PyErr_SetString(PyExc_TypeError, "metadata"); *err = 1; return NULL; }
                    v = PyDict_GetItemWithError(*meta, mk);
                    if ((!v && !PyErr_Occurred()) || v == Py_None) { /* then the resource's metadata JSON */
                        if (!*rmeta) {
                            PyObject *rv = PyDict_GetItemWithError(c->resource, s_metadata);
                            if (!rv && PyErr_Occurred()) { *err = 1; return NULL; }
                            *rmeta = PyObject_CallOneArg(h_parse_metadata, rv ? rv : Py_None);
                            if (!*rmeta) { *err = 1; return NULL; }
                        }
                        if (!PyDict_Check(*rmeta)) { PyErr_SetString(PyExc_TypeError, "metadata"); *err = 1; return NULL; }
                        v = PyDict_GetItemWithError(*rmeta, mk);
                    }
                }
            }
        }
        if (!v && PyErr_Occurred()) { *err = 1; return NULL; }
        if (!v || v == Py_None) continue;
        if (PyUnicode_CheckExact(v)) {
            if (PyUnicode_GET_LENGTH(v) == 0) continue;
            return col_str(v);
        }
        PyObject *r = PyObject_CallOneArg(h_resolved_text, v);
        if (!r) *err = 1;
        return r;
    }
    return NULL;
}

/* ---------------------------------------------------------------- spans */
typedef struct {
    Buf tid, sid, pid, name, smsg; uint64_t start, end; int32_t code;
    int name_ascii, smsg_ascii;
    Buf *attrs; Py_ssize_t nattrs, attrcap;
} Span;

static int emit_row(Ctx *c, PyObject **vals) {
    for (int i = 0; i < NCOLS; i++)
        if (PyList_Append(c->cols[i], vals[i])) return BAIL;
    c->count++;
    return 0;
}

/* The reference normaliser on one span: build its RawSpan and call normalize's row function. */
static int slow_span(Ctx *c, const Span *s) {
    PyObject *attrs = PyDict_New(), *events = PyList_New(0), *sp = NULL, *res = NULL;
    int rc = -1;
    if (!attrs || !events) goto done;
    for (Py_ssize_t i = 0; i < c->nattrs; i++) {
        Attr *a = &c->attrs[i];
        PyObject *k = str_from(a->key.p, a->key.n, a->key_ascii);
        PyObject *v = k ? attr_py(a) : NULL;
        if (!v || PyDict_SetItem(attrs, k, v)) { Py_XDECREF(k); goto done; }
        Py_DECREF(k);
    }
    for (Py_ssize_t i = 0; i < c->nevs; i++) {
        const uint8_t *p = c->evs[i].p, *end = p + c->evs[i].n;
        Field f;
        uint64_t t = 0;
        Buf name = {(const uint8_t *)"", 0};
        PyObject *ea = PyDict_New();
        if (!ea) goto done;
        while (next_field(&p, end, &f) == 1) {
            if (f.num == 1) t = f.v;
            else if (f.num == 2) { name.p = f.d; name.n = f.len; }
            else if (f.num == 3) {
                Buf k, v; int hv, ka;
                PyObject *key = NULL, *val = NULL;
                if (check_kv(f.d, f.len, &k, &v, &hv, &ka, 0)) PyErr_SetString(Fallback, "event attribute");
                else if ((key = str_from(k.p, k.n, ka))) val = py_kv_value(v.p, v.n, hv, 0);
                if (!val || PyDict_SetItem(ea, key, val)) { Py_XDECREF(key); Py_XDECREF(val); Py_DECREF(ea); goto done; }
                Py_DECREF(key); Py_DECREF(val);
            }
        }
        PyObject *ev = Py_BuildValue("(NKN)", PyUnicode_DecodeUTF8((const char *)name.p, name.n, "strict"),
                                     (unsigned long long)t, ea);
        if (!ev || PyList_Append(events, ev)) { Py_XDECREF(ev); goto done; }
        Py_DECREF(ev);
    }
    sp = PyObject_CallFunction(h_rawspan, "NNNNKKiNOOO", hex_text(&s->tid), hex_text(&s->sid), hex_text(&s->pid),
                               PyUnicode_DecodeUTF8((const char *)s->name.p, s->name.n, "strict"),
                               (unsigned long long)s->start, (unsigned long long)s->end, (int)s->code,
                               PyUnicode_DecodeUTF8((const char *)s->smsg.p, s->smsg.n, "strict"), attrs,
                               c->resource, events);
    if (!sp) goto done;
    res = PyObject_CallFunctionObjArgs(h_row_fallback, c->normalizer, sp, c->now, NULL);
    if (!res) goto done;
    if (!PyTuple_Check(res) || PyTuple_GET_SIZE(res) != 2) { PyErr_SetString(PyExc_TypeError, "row fallback"); goto done; }
    PyObject *row = PyTuple_GET_ITEM(res, 0);
    if (!PyTuple_Check(row) || PyTuple_GET_SIZE(row) != NCOLS) { PyErr_SetString(PyExc_TypeError, "row width"); goto done; }
    if (emit_row(c, &PyTuple_GET_ITEM(row, 0))) goto done;
    PyObject *ev = PyTuple_GET_ITEM(res, 1);
    if (!PyList_Check(ev)) { PyErr_SetString(PyExc_TypeError, "evals"); goto done; }
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(ev); i++)
        if (PyList_Append(c->evals, PyList_GET_ITEM(ev, i))) goto done;
    rc = 0;
done:
    Py_XDECREF(attrs); Py_XDECREF(events); Py_XDECREF(sp); Py_XDECREF(res);
    return rc;
}

/* 0 = row emitted, 1 = needs the reference path, -1 = error */
static int fast_span(Ctx *c, const Span *s) {
    Attr *slots[NSLOTS] = {0};
    int ranks[NSLOTS];
    Attr *opname = NULL, *params = NULL;
    PyObject *vals[NCOLS] = {0}, *meta = NULL, *rmeta = NULL;
    int rc = -1;
    for (int i = 0; i < NSLOTS; i++) ranks[i] = 99;
    if (c->nevs) return 1;
    Out *o = &c->json;
    o->n = 0; o->ascii = 1;
    if (out_put(o, "{", 1)) return BAIL;
    int first = 1;
    for (Py_ssize_t i = 0; i < c->nattrs; i++) {
        Attr *a = &c->attrs[i];
        const KeyInfo *ki = a->ki;
        if (ki && ki->slot >= 0) {
            if (ki->rank < ranks[ki->slot] && !is_empty(a)) { slots[ki->slot] = a; ranks[ki->slot] = ki->rank; }
            continue;
        }
        if (ki && ki->flag == F_SLOWSPAN) return 1;
        if (a->key.n && a->key.p[0] == '@') return 1;
        if (ki && ki->flag == F_OPNAME) opname = a;
        if (ki && ki->flag == F_PARAMS) params = a;
        if (!first && out_put(o, ",", 1)) return BAIL;
        first = 0;
        if (json_str(o, a->key.p, a->key.n, a->key_ascii) || out_put(o, ":", 1)) return BAIL;
        if (json_av(o, &a->av, 0)) return BAIL;
    }
    if (c->resource_json) {
        if (out_put(o, first ? "\"@resource\":" : ",\"@resource\":", first ? 12 : 13)) return BAIL;
        if (out_put(o, PyBytes_AS_STRING(c->resource_json), PyBytes_GET_SIZE(c->resource_json))) return BAIL;
        if (!c->res_ascii) o->ascii = 0;
        first = 0;
    }
    if (s->smsg.n) {
        if (out_put(o, first ? "\"@status_message\":" : ",\"@status_message\":", first ? 18 : 19)) return BAIL;
        if (json_str(o, s->smsg.p, s->smsg.n, s->smsg_ascii)) return BAIL;
    }
    if (out_put(o, "}", 1)) return BAIL;
    if (params && !slots[S_MODEL]) return 1; /* the model is inside the parameters JSON */

    PyObject *sv[NSLOTS] = {0}; /* borrowed materialised slot values */
    for (int i = 0; i < NSLOTS; i++)
        if (slots[i] && !(sv[i] = attr_py(slots[i]))) goto fail;

    PyObject *kind, *in, *out, *total, *cost;
    in = vals[11] = col_int(sv[S_INPUT]);
    out = vals[12] = col_int(sv[S_OUTPUT]);
    total = vals[13] = col_int(sv[S_TOTAL]);
    if (!in || !out || !total) goto fail;
    /* a value that fits no typed column: the reference path keeps it in the JSON column */
    if ((in == Py_None && sv[S_INPUT]) || (out == Py_None && sv[S_OUTPUT]) || (total == Py_None && sv[S_TOTAL])) {
        rc = 1;
        goto fail;
    }
    if (total == Py_None && (in != Py_None || out != Py_None)) {
        Py_DECREF(total);
        PyObject *a = in == Py_None ? PyLong_FromLong(0) : (Py_INCREF(in), in);
        PyObject *b = out == Py_None ? PyLong_FromLong(0) : (Py_INCREF(out), out);
        total = vals[13] = (a && b) ? PyNumber_Add(a, b) : NULL;
        Py_XDECREF(a); Py_XDECREF(b);
        if (!total) goto fail;
    }
    int t;
    if (sv[S_KIND] && (t = PyObject_IsTrue(sv[S_KIND])) != 0) {
        if (t < 0) goto fail;
        kind = PyObject_CallOneArg(h_kind_text, sv[S_KIND]);
    } else {
        PyObject *op = opname ? attr_py(opname) : Py_None;
        if (!op) goto fail;
        PyObject *key = PyUnicode_CheckExact(op) ? (Py_INCREF(op), op) : PyObject_Str(op);
        if (!key) goto fail;
        kind = PyDict_GetItemWithError(h_op_kinds, key);
        Py_DECREF(key);
        if (kind) Py_INCREF(kind);
        else if (!PyErr_Occurred()) {
            int m = sv[S_MODEL] ? PyObject_IsTrue(sv[S_MODEL]) : 0;
            if (m < 0) goto fail;
            kind = (m || total != Py_None) ? s_llm : s_unknown;
            Py_INCREF(kind);
        }
    }
    if (!kind) goto fail;
    vals[4] = col_str(kind);
    Py_DECREF(kind);
    if (!vals[4]) goto fail;
    if (PyUnicode_CheckExact(vals[4]) && PyUnicode_Compare(vals[4], s_evaluator) == 0) { rc = 1; goto fail; }

    cost = vals[14] = col_float(sv[S_COST]);
    if (!cost) goto fail;
    if (cost == Py_None && sv[S_COST]) { rc = 1; goto fail; }
    if (cost == Py_None && c->has_prices && sv[S_MODEL]) {
        int m = PyObject_IsTrue(sv[S_MODEL]);
        int ti = in == Py_None ? 0 : PyObject_IsTrue(in), to = out == Py_None ? 0 : PyObject_IsTrue(out);
        if (m < 0 || ti < 0 || to < 0) goto fail;
        if (m && (ti || to)) {
            Py_DECREF(cost);
            cost = vals[14] = PyObject_CallFunctionObjArgs(h_price_cost, c->normalizer, sv[S_MODEL], in, out, NULL);
            if (!cost) goto fail;
        }
    }
    PyObject *err = NULL;
    if (sv[S_ERROR]) {
        int e = PyObject_IsTrue(sv[S_ERROR]);
        if (e < 0) goto fail;
        if (e) err = sv[S_ERROR];
    }
    PyObject *status = (s->code == 1) ? s_ok : (s->code == 2) ? s_error : s_unset;
    if (err && status != s_ok) status = s_error;
    Py_INCREF(status);
    vals[7] = status;
    if (!(vals[8] = col_str(err)) || !(vals[9] = col_str(sv[S_MODEL])) || !(vals[10] = col_str(sv[S_PROVIDER])))
        goto fail;

    int e = 0;
    PyObject *r;
    r = resolve(c, c->lookups[0], &meta, &rmeta, &e); if (e) goto fail;
    vals[15] = r ? r : (Py_INCREF(s_empty), s_empty);
    r = resolve(c, c->lookups[1], &meta, &rmeta, &e); if (e) goto fail;
    vals[16] = r ? r : (Py_INCREF(s_empty), s_empty);
    r = resolve(c, c->lookups[2], &meta, &rmeta, &e); if (e) goto fail;
    vals[17] = r ? r : (Py_INCREF(s_empty), s_empty);
    r = resolve(c, c->lookups[3], &meta, &rmeta, &e); if (e) goto fail;
    vals[18] = r ? r : (Py_INCREF(s_empty), s_empty); /* "" = none: the writer inherits or says "default" */
    for (int i = 15; i <= 18; i++) /* `_resolve(...) or ""`: an all-NUL text resolves to "" */
        if (PyUnicode_GET_LENGTH(vals[i]) == 0) {
            Py_DECREF(vals[i]);
            vals[i] = s_empty;
            Py_INCREF(vals[i]);
        }
    int b;
    if ((b = col_bool(sv[S_FALLBACK])) == -2) goto fail;
    vals[19] = PyBool_FromLong(b == 1 || PyUnicode_Compare(vals[17], s_fallback) == 0);
    if ((b = col_bool(sv[S_CACHE_HIT])) == -2) goto fail;
    vals[20] = PyBool_FromLong(b == 1 || PyUnicode_Compare(vals[17], s_cache) == 0);
    if (!(vals[21] = col_str(sv[S_STEP])) || !(vals[22] = col_str(sv[S_TOOL])) ||
        !(vals[23] = col_str(sv[S_SESSION])) || !(vals[24] = col_str(sv[S_USER])))
        goto fail;
    PyObject *ttft = col_float(sv[S_TTFT]);
    if (!ttft) goto fail;
    if (ttft == Py_None && sv[S_TTFT]) { Py_DECREF(ttft); rc = 1; goto fail; }
    if (ttft == Py_None) {
        Py_DECREF(ttft);
        PyObject *st = col_float(sv[S_SERVER_TTFT]);
        if (!st) goto fail;
        if (st == Py_None && sv[S_SERVER_TTFT]) { Py_DECREF(st); rc = 1; goto fail; }
        if (st == Py_None) ttft = st;
        else { ttft = PyFloat_FromDouble(PyFloat_AS_DOUBLE(st) * 1000.0); Py_DECREF(st); if (!ttft) goto fail; }
    }
    vals[25] = ttft;
    if ((b = col_bool(sv[S_REQUEST])) == -2) goto fail;
    vals[26] = PyBool_FromLong(s->pid.n == 0 || b == 1);
    vals[27] = c->service; Py_INCREF(c->service);
    if (!(vals[28] = out_text(o))) goto fail;
    vals[29] = c->now; Py_INCREF(c->now);
    if (!(vals[0] = hex_text(&s->tid)) || !(vals[1] = hex_text(&s->sid)) || !(vals[2] = hex_text(&s->pid)))
        goto fail;
    if (s->name_ascii && !memchr(s->name.p, 0, s->name.n)) vals[3] = str_from(s->name.p, s->name.n, 1);
    else {
        PyObject *nm = PyUnicode_DecodeUTF8((const char *)s->name.p, s->name.n, "strict");
        vals[3] = nm ? col_str(nm) : NULL;
        Py_XDECREF(nm);
    }
    if (!vals[3]) goto fail;
    if (!(vals[5] = PyLong_FromUnsignedLongLong(s->start))) goto fail;
    vals[6] = PyFloat_FromDouble(s->end > s->start ? (double)(s->end - s->start) / 1e6 : 0.0);
    if (!vals[6]) goto fail;
    rc = emit_row(c, vals);
fail:
    for (int i = 0; i < NCOLS; i++) Py_XDECREF(vals[i]);
    Py_XDECREF(meta);
    Py_XDECREF(rmeta);
    return rc;
}

/* Parse one Span message (structure, UTF-8 of its strings) into s; -1 = Fallback */
static int parse_span(Ctx *c, const uint8_t *p, Py_ssize_t n, Span *s) {
    const uint8_t *end = p + n;
    Field f;
    int r;
    static const uint8_t nothing[1] = {0};
    s->tid.p = s->sid.p = s->pid.p = s->name.p = s->smsg.p = nothing;
    s->tid.n = s->sid.n = s->pid.n = s->name.n = s->smsg.n = 0;
    s->start = s->end = 0; s->code = 0; s->name_ascii = s->smsg_ascii = 1;
    s->nattrs = 0; c->nevs = 0;
    while ((r = next_field(&p, end, &f)) == 1) {
        switch (f.num) {
        case 1: case 2: case 4: case 5: case 9: case 11: case 15:
            if (f.wt != 2) return BAIL;
            break;
        case 7: case 8:
            if (f.wt != 1) return BAIL;
            break;
        default:
            continue; /* unknown to the reference's schema: skipped */
        }
        switch (f.num) {
        case 1: s->tid.p = f.d; s->tid.n = f.len; break;
        case 2: s->sid.p = f.d; s->sid.n = f.len; break;
        case 4: s->pid.p = f.d; s->pid.n = f.len; break;
        case 5:
            s->name_ascii = 1;
            if (!utf8_ok(f.d, f.len, &s->name_ascii)) return BAIL;
            s->name.p = f.d; s->name.n = f.len;
            break;
        case 7: s->start = f.v; break;
        case 8: s->end = f.v; break;
        case 9: if (push_buf(&s->attrs, &s->nattrs, &s->attrcap, f.d, f.len)) return -2; break;
        case 11: {
            const uint8_t *q = f.d, *qe = f.d + f.len;
            Field g;
            int t;
            while ((t = next_field(&q, qe, &g)) == 1) {
                int ascii;
                if ((g.num == 1 && g.wt != 1) || ((g.num == 2 || g.num == 3) && g.wt != 2)) return BAIL;
                if (g.num == 2 && !utf8_ok(g.d, g.len, &ascii)) return BAIL;
            }
            if (t < 0) return BAIL;
            if (push_buf(&c->evs, &c->nevs, &c->evcap, f.d, f.len)) return -2;
            break;
        }
        case 15: {
            const uint8_t *q = f.d, *qe = f.d + f.len;
            Field g;
            int t;
            while ((t = next_field(&q, qe, &g)) == 1) {
                if (g.num == 2) {
                    if (g.wt != 2) return BAIL;
                    s->smsg_ascii = 1;
                    if (!utf8_ok(g.d, g.len, &s->smsg_ascii)) return BAIL;
                    s->smsg.p = g.d; s->smsg.n = g.len;
                } else if (g.num == 3) {
                    if (g.wt != 0) return BAIL;
                    s->code = (int32_t)(uint32_t)g.v;
                }
            }
            if (t < 0) return BAIL;
            break;
        }
        }
    }
    return r < 0 ? -1 : 0;
}

static int is_zero(const Buf *b) {
    for (Py_ssize_t i = 0; i < b->n; i++) if (b->p[i]) return 0;
    return 1;
}

static int do_span(Ctx *c, Span *s, const uint8_t *p, Py_ssize_t n) {
    int r = parse_span(c, p, n, s);
    if (r) return r;
    if (s->tid.n != 16 || s->sid.n != 8 || (s->pid.n != 0 && s->pid.n != 8) || is_zero(&s->tid) || is_zero(&s->sid)) {
        c->rejected++;
        if (PyList_GET_SIZE(c->reasons) < 3) {
            PyObject *name = PyUnicode_DecodeUTF8((const char *)s->name.p, s->name.n, "strict");
            PyObject *msg = name ? PyUnicode_FromFormat("span '%U' has an invalid trace_id/span_id/parent_span_id", name) : NULL;
            Py_XDECREF(name);
            if (!msg || PyList_Append(c->reasons, msg)) { Py_XDECREF(msg); return -2; }
            Py_DECREF(msg);
        }
        return 0;
    }
    /* a time past int64 fits no BIGINT column: rejected with a reason, as the reference does */
    if (s->start > (uint64_t)INT64_MAX || s->end > (uint64_t)INT64_MAX) {
        c->rejected++;
        if (PyList_GET_SIZE(c->reasons) < 3) {
            PyObject *name = PyUnicode_DecodeUTF8((const char *)s->name.p, s->name.n, "strict");
            PyObject *cut = name ? PyUnicode_Substring(name, 0, 100) : NULL;
            PyObject *msg = cut ? PyUnicode_FromFormat("span '%U' has a start or end time outside 0..2^63-1 ns", cut)
                                : NULL;
            Py_XDECREF(name); Py_XDECREF(cut);
            if (!msg || PyList_Append(c->reasons, msg)) { Py_XDECREF(msg); return -2; }
            Py_DECREF(msg);
        }
        return 0;
    }
    r = load_attrs(c, s->attrs, s->nattrs);
    if (r == 0) {
        r = fast_span(c, s);
        if (r == 1) r = slow_span(c, s);
        else if (r < 0) r = -2;
        if (r < 0) r = -2;
    }
    drop_attrs(c);
    return r;
}

/* Resource attributes (all occurrences of field 1 of every Resource occurrence) as a dict */
static int load_resource(Ctx *c, const uint8_t *p, Py_ssize_t n) {
    const uint8_t *end = p + n;
    Field f;
    int r;
    Py_CLEAR(c->resource); Py_CLEAR(c->service); Py_CLEAR(c->resource_json);
    c->resource = PyDict_New();
    if (!c->resource) return -2;
    while ((r = next_field(&p, end, &f)) == 1) {
        if (f.num != 1) continue; /* dropped_attributes_count, entity refs: not read */
        if (f.wt != 2) return BAIL;
        Buf k, v; int hv, ka;
        if (check_kv(f.d, f.len, &k, &v, &hv, &ka, 0)) return BAIL;
        PyObject *key = str_from(k.p, k.n, ka);
        PyObject *val = key ? py_kv_value(v.p, v.n, hv, 0) : NULL;
        if (!val || PyDict_SetItem(c->resource, key, val)) { Py_XDECREF(key); Py_XDECREF(val); return -2; }
        Py_DECREF(key); Py_DECREF(val);
    }
    if (r < 0) return BAIL;
    return 0;
}

static int finish_resource(Ctx *c) {
    PyObject *sn = PyDict_GetItemWithError(c->resource, s_service_name);
    if (!sn && PyErr_Occurred()) return -2;
    if (!(c->service = col_str(sn))) return -2;
    if (PyDict_GET_SIZE(c->resource)) {
        if (!(c->resource_json = PyObject_CallOneArg(h_dumps, c->resource))) return -2;
        /* resource JSON may hold non-ASCII text */
    }
    return 0;
}

static int resource_ascii(Ctx *c) {
    if (!c->resource_json) return 1;
    const char *p = PyBytes_AS_STRING(c->resource_json);
    for (Py_ssize_t i = 0; i < PyBytes_GET_SIZE(c->resource_json); i++) if ((uint8_t)p[i] >= 0x80) return 0;
    return 1;
}

/* Every GIL_EVERY spans (~0.6 ms of work) the decoder lets other threads run: a large body is
 * decoded in a worker thread, and without this the server's event loop waited for the whole body
 * (hundreds of ms for 16 MB). Everything the decoder holds is private to this call; the body is
 * pinned by its Py_buffer. gil_offers() counts the hand-overs, for tests. */
#define GIL_EVERY 256
static Py_ssize_t gil_offers_n;

static inline void offer_gil(void) {
    gil_offers_n++;
    Py_BEGIN_ALLOW_THREADS
    Py_END_ALLOW_THREADS
}

static int do_body(Ctx *c, const uint8_t *p, Py_ssize_t n) {
    const uint8_t *end = p + n;
    Field f;
    int r;
    Span s = {0};
    int rc = 0;
    Py_ssize_t since_offer = 0;
    /* the structure of the whole body first, as upb does before any attribute is read */
    while ((r = next_field(&p, end, &f)) == 1) {
        if (f.num != 1) continue;
        if (f.wt != 2) { rc = BAIL; break; }
        /* ResourceSpans: resource (1, merged over occurrences), scope_spans (2) */
        const uint8_t *q = f.d, *qe = f.d + f.len;
        Field g;
        int t;
        Out res = {0};
        while ((t = next_field(&q, qe, &g)) == 1) {
            if (g.num == 1) {
                if (g.wt != 2) { t = BAIL; break; }
                /* collect Resource bodies: concatenating them is how protobuf merges repeated fields */
                if (out_put(&res, (const char *)g.d, g.len)) { t = -2; break; }
            } else if (g.num == 2 && g.wt != 2) { t = BAIL; break; }
        }
        if (t == 0) t = load_resource(c, (const uint8_t *)res.p, res.n);
        PyMem_Free(res.p);
        if (t == 0) t = finish_resource(c);
        if (t < 0) { rc = t; break; }
        c->res_ascii = resource_ascii(c);
        q = f.d;
        while ((t = next_field(&q, qe, &g)) == 1) {
            if (g.num != 2) continue;
            const uint8_t *u = g.d, *ue = g.d + g.len;
            Field h;
            int w;
            while ((w = next_field(&u, ue, &h)) == 1) {
                if (h.num != 2) continue; /* scope (1) and schema_url (3) are not read */
                if (h.wt != 2) { w = BAIL; break; }
                if ((w = do_span(c, &s, h.d, h.len)) < 0) break;
                if (++since_offer >= GIL_EVERY) { since_offer = 0; offer_gil(); }
            }
            if (w < 0) { t = w; break; }
        }
        if (t < 0) { rc = t; break; }
    }
    if (r < 0 && rc == 0) rc = -1;
    PyMem_Free(s.attrs);
    return rc;
}

/* decode(body, config, now) -> (columns, count, evals, rejected, reasons)
 * config = (normalizer, deployment lookups, release lookups, route lookups, cohort lookups, has_prices) */
static PyObject *decode(PyObject *self, PyObject *args) {
    Py_buffer body;
    PyObject *cfg, *now;
    if (!h_str) { PyErr_SetString(PyExc_RuntimeError, "_otlpfast.setup() was not called"); return NULL; }
    if (!PyArg_ParseTuple(args, "y*O!O!", &body, &PyTuple_Type, &cfg, &PyFloat_Type, &now)) return NULL;
    if (PyTuple_GET_SIZE(cfg) != 6) { PyBuffer_Release(&body); PyErr_SetString(PyExc_ValueError, "config"); return NULL; }
    Ctx c;
    memset(&c, 0, sizeof c);
    c.normalizer = PyTuple_GET_ITEM(cfg, 0);
    for (int i = 0; i < 4; i++) c.lookups[i] = PyTuple_GET_ITEM(cfg, i + 1);
    c.has_prices = PyObject_IsTrue(PyTuple_GET_ITEM(cfg, 5));
    c.now = now;
    PyObject *result = NULL;
    int rc = -2;
    for (int i = 0; i < NCOLS; i++) if (!(c.cols[i] = PyList_New(0))) goto done;
    if (!(c.evals = PyList_New(0)) || !(c.reasons = PyList_New(0))) goto done;
    rc = do_body(&c, body.buf, body.len);
    if (rc == 0) {
        PyObject *cols = PyList_New(NCOLS);
        if (cols) {
            for (int i = 0; i < NCOLS; i++) { PyList_SET_ITEM(cols, i, c.cols[i]); c.cols[i] = NULL; }
            result = Py_BuildValue("(NnOnO)", cols, c.count, c.evals, c.rejected, c.reasons);
        }
    }
done:
    if (rc == -1 || (rc == -2 && !PyErr_Occurred()))
        PyErr_Format(Fallback, "not a shape the compiled decoder takes (line %d)", bail_line);
    else if (rc == -2 && !PyErr_ExceptionMatches(PyExc_MemoryError) && !PyErr_ExceptionMatches(Fallback)) {
        /* a helper raised: the reference path will raise the same thing with its own traceback */
        PyErr_Clear();
        PyErr_SetString(Fallback, "a helper raised");
    }
    for (int i = 0; i < NCOLS; i++) Py_XDECREF(c.cols[i]);
    Py_XDECREF(c.evals); Py_XDECREF(c.reasons);
    Py_XDECREF(c.resource); Py_XDECREF(c.service); Py_XDECREF(c.resource_json);
    PyMem_Free(c.attrs); PyMem_Free(c.dedup); PyMem_Free(c.evs); PyMem_Free(c.json.p);
    PyBuffer_Release(&body);
    return result;
}

/* setup(helpers: dict, slot_of: dict[str, (slot, rank)], specials: dict[str, flag]) */
static PyObject *setup(PyObject *self, PyObject *args) {
    PyObject *helpers, *slot_of, *specials;
    if (!PyArg_ParseTuple(args, "O!O!O!", &PyDict_Type, &helpers, &PyDict_Type, &slot_of, &PyDict_Type, &specials))
        return NULL;
    static const char *names[] = {"str", "int", "float", "bool", "kind_text", "op_kinds", "parse_metadata",
                                  "resolved_text", "row_fallback", "RawSpan", "dumps", "price_cost"};
    PyObject **dest[] = {&h_str, &h_int, &h_float, &h_bool, &h_kind_text, &h_op_kinds, &h_parse_metadata,
                         &h_resolved_text, &h_row_fallback, &h_rawspan, &h_dumps, &h_price_cost};
    for (int i = 0; i < 12; i++) {
        PyObject *v = PyDict_GetItemString(helpers, names[i]);
        if (!v) { PyErr_Format(PyExc_KeyError, "helper %s", names[i]); return NULL; }
        Py_INCREF(v);
        Py_XSETREF(*dest[i], v);
    }
    nkeys = 0;
    memset(keytab, 0, sizeof keytab);
    PyObject *k, *v;
    Py_ssize_t pos = 0;
    while (PyDict_Next(slot_of, &pos, &k, &v)) {
        if (key_add(k, (int)PyLong_AsLong(PyTuple_GET_ITEM(v, 0)), (int)PyLong_AsLong(PyTuple_GET_ITEM(v, 1)), F_NONE))
            return NULL;
    }
    pos = 0;
    while (PyDict_Next(specials, &pos, &k, &v)) {
        if (key_add(k, -1, 0, (int)PyLong_AsLong(v))) return NULL;
    }
    Py_RETURN_NONE;
}

static PyObject *gil_offers(PyObject *self, PyObject *unused) {
    return PyLong_FromSsize_t(gil_offers_n);
}

static PyMethodDef methods[] = {
    {"gil_offers", gil_offers, METH_NOARGS, "gil_offers() -> how many times decoding let other threads run"},
    {"decode", decode, METH_VARARGS, "decode(body, config, now) -> (columns, count, evals, rejected, reasons)"},
    {"setup", setup, METH_VARARGS, "setup(helpers, slot_of, specials)"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef moddef = {PyModuleDef_HEAD_INIT, "_otlpfast", "Compiled OTLP decoder and normaliser.", -1,
                                    methods};

PyMODINIT_FUNC PyInit__otlpfast(void) {
    PyObject *m = PyModule_Create(&moddef);
    if (!m) return NULL;
    Fallback = PyErr_NewException("sluice.telemetry._otlpfast.Fallback", NULL, NULL);
    if (!Fallback || PyModule_AddObjectRef(m, "Fallback", Fallback)) return NULL;
    for (int i = 0; i < 0x20; i++) escape_of[i] = 'u';
    escape_of['\b'] = 'b'; escape_of['\t'] = 't'; escape_of['\n'] = 'n'; escape_of['\f'] = 'f'; escape_of['\r'] = 'r';
    escape_of['"'] = '"'; escape_of['\\'] = '\\';
    s_unset = PyUnicode_InternFromString("UNSET"); s_ok = PyUnicode_InternFromString("OK");
    s_error = PyUnicode_InternFromString("ERROR"); s_empty = PyUnicode_InternFromString("");
    s_default = PyUnicode_InternFromString("default"); s_fallback = PyUnicode_InternFromString("fallback");
    s_cache = PyUnicode_InternFromString("cache"); s_none_text = PyUnicode_InternFromString("None");
    s_llm = PyUnicode_InternFromString("LLM"); s_unknown = PyUnicode_InternFromString("UNKNOWN");
    s_evaluator = PyUnicode_InternFromString("EVALUATOR"); s_service_name = PyUnicode_InternFromString("service.name");
    s_metadata = PyUnicode_InternFromString("metadata");
    if (!s_unset || !s_ok || !s_error || !s_empty || !s_default || !s_fallback || !s_cache || !s_none_text || !s_llm ||
        !s_unknown || !s_evaluator || !s_service_name || !s_metadata)
        return NULL;
    return m;
}
