# cython: language_level=3, boundscheck=False, wraparound=False
"""Cython attachment table: the same contract as ``attachment_table_py``, with the hot data in C.

Layout: ``stripes`` C hash tables (open addressing, linear probing, backward-shift deletion), each behind its
own ``PyThread`` lock. A slot holds a malloc'd UTF-8 copy of the volume id and a plain ``Entry`` struct: node
ids as integer handles (interned once per table, never freed: a cluster has few node names), times as doubles,
two fixed node slots. Every lock is taken with the GIL released, so a thread holding a stripe lock can always
get the GIL back and no lock order between the two can deadlock.
"""

from cpython.object cimport PyObject_Hash
from cpython.pythread cimport (
    WAIT_LOCK,
    PyThread_acquire_lock,
    PyThread_allocate_lock,
    PyThread_free_lock,
    PyThread_release_lock,
    PyThread_type_lock,
)
from cpython.unicode cimport PyUnicode_AsUTF8AndSize, PyUnicode_DecodeUTF8
from libc.math cimport isfinite
from libc.stdlib cimport calloc, free, malloc
from libc.string cimport memcmp, memcpy, memset

cimport cython

from rds_csi._native.types import (
    MAX_NODES,
    AccessKind,
    Migration,
    NodeAttachment,
    VolumeEntry,
    check_entry,
    check_grace,
    check_id,
    check_stripes,
)

cdef enum:
    NODE_SLOTS = 2
    MIN_CAPACITY = 8
    KIND_MULTI_NODE_BLOCK = 2

if MAX_NODES != NODE_SLOTS:
    raise ImportError(f"attachment_table was built for {NODE_SLOTS} nodes per volume, types say {MAX_NODES}")

cdef object SINGLE_NODE = AccessKind.SINGLE_NODE
cdef object MULTI_NODE_BLOCK = AccessKind.MULTI_NODE_BLOCK

cdef enum Status:
    DONE
    UNCHANGED
    NO_MEMORY
    NO_ENTRY
    KIND_MISMATCH
    FULL
    MIGRATION_EXISTS
    NOT_MIGRATABLE


cdef struct Entry:
    int kind
    int count
    Py_ssize_t node[NODE_SLOTS]
    double attached_at[NODE_SLOTS]
    bint migrating
    bint migration_failed
    Py_ssize_t source
    Py_ssize_t target
    double started_at
    double deadline
    bint detached
    double last_detach_at


cdef struct Slot:
    char *key  # NULL marks a free slot
    Py_ssize_t size
    Py_hash_t hash
    Entry entry


cdef struct Key:
    const char *data
    Py_ssize_t size
    Py_hash_t hash


cdef struct Stripe:
    PyThread_type_lock lock
    Slot *slots
    size_t mask
    int shift  # the hash bits below it chose the stripe, so probing starts from the bits above
    size_t used
    size_t attachments


cdef inline void lock(Stripe *s) noexcept nogil:
    PyThread_acquire_lock(s.lock, WAIT_LOCK)


cdef inline void unlock(Stripe *s) noexcept nogil:
    PyThread_release_lock(s.lock)


cdef inline size_t home(const Stripe *s, Py_hash_t h) noexcept nogil:
    return (<size_t>h >> s.shift) & s.mask


cdef int init_table(Stripe *s, int shift) noexcept nogil:
    s.slots = <Slot *>calloc(MIN_CAPACITY, sizeof(Slot))
    if s.slots == NULL:
        return -1
    s.mask = MIN_CAPACITY - 1
    s.shift = shift
    s.used = 0
    s.attachments = 0
    return 0


cdef void free_table(Stripe *s) noexcept nogil:
    cdef size_t i
    if s.slots == NULL:
        return
    for i in range(s.mask + 1):
        free(s.slots[i].key)
    free(s.slots)
    s.slots = NULL


cdef Slot *find(Stripe *s, const Key *k) noexcept nogil:
    cdef size_t i = home(s, k.hash)
    cdef Slot *slot
    while True:  # the load factor stays <= 1/2, so a free slot always ends the probe
        slot = &s.slots[i]
        if slot.key == NULL:
            return NULL
        if slot.hash == k.hash and slot.size == k.size and memcmp(slot.key, k.data, k.size) == 0:
            return slot
        i = (i + 1) & s.mask


cdef int grow(Stripe *s) noexcept nogil:
    cdef size_t old_capacity = s.mask + 1
    cdef Slot *old = s.slots
    cdef Slot *slots = <Slot *>calloc(old_capacity * 2, sizeof(Slot))
    cdef size_t i, j
    if slots == NULL:
        return -1
    s.slots = slots
    s.mask = old_capacity * 2 - 1
    for j in range(old_capacity):
        if old[j].key != NULL:
            i = home(s, old[j].hash)
            while slots[i].key != NULL:
                i = (i + 1) & s.mask
            slots[i] = old[j]
    free(old)
    return 0


cdef Slot *add(Stripe *s, const Key *k) noexcept nogil:
    """Insert an empty entry for a key known to be absent; NULL when out of memory."""
    cdef size_t i
    cdef Slot *slot
    cdef char *copy
    if (s.used + 1) * 2 > s.mask + 1 and grow(s) != 0:
        return NULL
    copy = <char *>malloc(k.size)
    if copy == NULL:
        return NULL
    memcpy(copy, k.data, k.size)
    i = home(s, k.hash)
    while s.slots[i].key != NULL:
        i = (i + 1) & s.mask
    slot = &s.slots[i]
    memset(&slot.entry, 0, sizeof(Entry))
    slot.key = copy
    slot.size = k.size
    slot.hash = k.hash
    s.used += 1
    return slot


cdef void remove(Stripe *s, Slot *slot) noexcept nogil:
    # Backward-shift deletion: pull later members of the probe run into the hole so lookups never need
    # tombstones. The member at j may move to the hole i only if its home is not cyclically in (i, j].
    cdef size_t i = <size_t>(slot - s.slots)
    cdef size_t j = i
    cdef size_t h
    s.attachments -= slot.entry.count
    s.used -= 1
    free(slot.key)
    while True:
        j = (j + 1) & s.mask
        if s.slots[j].key == NULL:
            break
        h = home(s, s.slots[j].hash)
        if (i < j and (h <= i or h > j)) or (j < i and h <= i and h > j):
            s.slots[i] = s.slots[j]
            i = j
    s.slots[i].key = NULL


cdef inline int index_of(const Entry *e, Py_ssize_t node) noexcept nogil:
    cdef int i
    for i in range(e.count):
        if e.node[i] == node:
            return i
    return -1


cdef bint same(const Entry *a, const Entry *b) noexcept nogil:
    cdef int i
    if a.kind != b.kind or a.count != b.count or a.migrating != b.migrating or a.detached != b.detached:
        return False
    for i in range(a.count):
        if a.node[i] != b.node[i] or a.attached_at[i] != b.attached_at[i]:
            return False
    if a.migrating and (
        a.source != b.source or a.target != b.target or a.started_at != b.started_at
        or a.deadline != b.deadline or a.migration_failed != b.migration_failed
    ):
        return False
    return not a.detached or a.last_detach_at == b.last_detach_at


cdef Status attach_locked(Stripe *s, const Key *k, Py_ssize_t node, int kind, double now) noexcept nogil:
    cdef Slot *slot = find(s, k)
    cdef Entry *e
    if slot == NULL:
        slot = add(s, k)
        if slot == NULL:
            return NO_MEMORY
        e = &slot.entry
    else:
        e = &slot.entry
        if e.count > 0 and e.kind != kind:
            return KIND_MISMATCH
        if index_of(e, node) >= 0:
            return UNCHANGED
        if e.count >= NODE_SLOTS:
            return FULL
    e.kind = kind
    e.node[e.count] = node
    e.attached_at[e.count] = now
    e.count += 1
    s.attachments += 1
    return DONE


cdef Status detach_locked(Stripe *s, const Key *k, Py_ssize_t node, double now) noexcept nogil:
    cdef Slot *slot = find(s, k)
    cdef Entry *e
    cdef int i
    if slot == NULL:
        return UNCHANGED
    e = &slot.entry
    i = index_of(e, node)
    if i < 0:
        return UNCHANGED
    if e.migrating and (e.source == node or e.target == node):
        e.migrating = False
    while i + 1 < e.count:  # keep attach order: the survivor of a migration stays first
        e.node[i] = e.node[i + 1]
        e.attached_at[i] = e.attached_at[i + 1]
        i += 1
    e.count -= 1
    e.detached = True
    e.last_detach_at = now
    s.attachments -= 1
    return DONE


cdef Status start_migration_locked(Stripe *s, const Key *k, const Entry *m) noexcept nogil:
    cdef Slot *slot = find(s, k)
    cdef Entry *e
    if slot == NULL:
        return NO_ENTRY
    e = &slot.entry
    if e.migrating:
        return MIGRATION_EXISTS
    if e.kind != KIND_MULTI_NODE_BLOCK or index_of(e, m.source) < 0 or index_of(e, m.target) < 0:
        return NOT_MIGRATABLE
    e.migrating = True
    e.migration_failed = False
    e.source = m.source
    e.target = m.target
    e.started_at = m.started_at
    e.deadline = m.deadline
    return DONE


cdef Status swap_locked(Stripe *s, const Key *k, const Entry *expected, const Entry *new) noexcept nogil:
    cdef Slot *slot = find(s, k)
    if expected == NULL:
        if slot != NULL:
            return UNCHANGED
    elif slot == NULL or not same(&slot.entry, expected):
        return UNCHANGED
    if new == NULL:
        if slot != NULL:
            remove(s, slot)
        return DONE
    if slot == NULL:
        slot = add(s, k)
        if slot == NULL:
            return NO_MEMORY
    else:
        s.attachments -= slot.entry.count
    slot.entry = new[0]
    s.attachments += new.count
    return DONE


cdef extern from "Python.h":
    bint PyUnicode_IS_ASCII(object)


cdef str exact_id(object value, str what):
    if type(value) is str and PyUnicode_IS_ASCII(value) and len(<str>value) > 0:
        return <str>value
    return check_id(value, what)


cdef int make_key(str value, Key *k) except -1:
    # The UTF-8 buffer belongs to ``value``; the caller keeps ``value`` alive for as long as ``k`` is used.
    k.data = PyUnicode_AsUTF8AndSize(value, &k.size)
    k.hash = PyObject_Hash(value)
    return 0


cdef int check_kind(object kind) except -1:
    if kind is SINGLE_NODE:
        return 1
    if kind is MULTI_NODE_BLOCK:
        return 2
    return AccessKind(kind)


cdef int check_finite(double value, str what) except -1:
    if not isfinite(value):
        raise ValueError(f"{what} must be finite, got {value!r}")
    return 0


@cython.final
cdef class AttachmentTable:
    """Per-volume attachment state behind lock striping; see ``attachment_table_py`` for the contract."""

    cdef Stripe *_stripes
    cdef size_t _count
    cdef size_t _stripe_mask
    cdef PyThread_type_lock _intern_lock
    cdef dict _handles
    cdef list _names

    def __cinit__(self, stripes=64):
        cdef size_t i
        cdef int shift = 0
        self._count = check_stripes(stripes)
        self._stripe_mask = self._count - 1
        while (<size_t>1 << shift) < self._count:
            shift += 1
        self._handles = {}
        self._names = []
        self._intern_lock = PyThread_allocate_lock()
        self._stripes = <Stripe *>calloc(self._count, sizeof(Stripe))
        if self._intern_lock == NULL or self._stripes == NULL:
            raise MemoryError()
        for i in range(self._count):
            self._stripes[i].lock = PyThread_allocate_lock()
            if self._stripes[i].lock == NULL or init_table(&self._stripes[i], shift) != 0:
                raise MemoryError()

    def __dealloc__(self):
        cdef size_t i
        if self._stripes != NULL:
            for i in range(self._count):
                free_table(&self._stripes[i])
                if self._stripes[i].lock != NULL:
                    PyThread_free_lock(self._stripes[i].lock)
            free(self._stripes)
        if self._intern_lock != NULL:
            PyThread_free_lock(self._intern_lock)

    cdef inline Stripe *_stripe(self, const Key *k) noexcept nogil:
        return &self._stripes[<size_t>k.hash & self._stripe_mask]

    cdef Py_ssize_t _handle(self, str node_id) except -2:
        handle = self._handles.get(node_id)
        return -1 if handle is None else <Py_ssize_t>handle

    cdef Py_ssize_t _intern(self, str node_id) except -1:
        cdef Py_ssize_t handle = self._handle(node_id)
        if handle >= 0:
            return handle
        with nogil:
            PyThread_acquire_lock(self._intern_lock, WAIT_LOCK)
        try:
            handle = self._handle(node_id)
            if handle < 0:
                # Name before handle: a reader that finds the handle can always resolve it.
                handle = len(self._names)
                self._names.append(node_id)
                self._handles[node_id] = handle
        finally:
            PyThread_release_lock(self._intern_lock)
        return handle

    cdef bint _encode(self, object entry, Entry *out, bint intern) except -1:
        """Fill ``out`` from a VolumeEntry; False if it names a node this table never saw (so cannot match)."""
        cdef Py_ssize_t i, handle
        nodes = entry.nodes
        if len(nodes) > NODE_SLOTS:  # guards the C arrays even against an entry built around its checks
            raise ValueError(f"volume {entry.volume_id!r} has {len(nodes)} nodes; at most {NODE_SLOTS}")
        memset(out, 0, sizeof(Entry))
        out.kind = check_kind(entry.kind)
        out.count = <int>len(nodes)
        for i in range(out.count):
            node = nodes[i]
            handle = self._intern(node.node_id) if intern else self._handle(node.node_id)
            if handle < 0:
                return False
            out.node[i] = handle
            out.attached_at[i] = node.attached_at
        migration = entry.migration
        if migration is not None:
            out.migrating = True
            out.migration_failed = migration.failed
            out.source = self._handle(migration.source)
            out.target = self._handle(migration.target)
            out.started_at = migration.started_at
            out.deadline = migration.deadline
        if entry.last_detach_at is not None:
            out.detached = True
            out.last_detach_at = entry.last_detach_at
        return True

    cdef object _decode(self, str volume_id, const Entry *e):
        cdef int i
        names = self._names
        nodes = []
        for i in range(e.count):
            nodes.append(NodeAttachment(names[e.node[i]], e.attached_at[i]))
        migration = None
        if e.migrating:
            migration = Migration(names[e.source], names[e.target], e.started_at, e.deadline, e.migration_failed)
        last_detach_at = e.last_detach_at if e.detached else None
        return VolumeEntry(volume_id, AccessKind(e.kind), tuple(nodes), migration, last_detach_at)

    cdef bint _snapshot(self, str volume_id, Entry *out) except -1:
        cdef Key k
        cdef Slot *slot
        cdef Stripe *s
        make_key(volume_id, &k)
        s = self._stripe(&k)
        with nogil:
            lock(s)
            slot = find(s, &k)
            if slot != NULL:
                out[0] = slot.entry
            unlock(s)
        return slot != NULL

    cdef object _raise(self, Status status, str volume_id, str node_id=None):
        if status == NO_MEMORY:
            raise MemoryError()
        if status == NO_ENTRY:
            raise KeyError(volume_id)
        if status == KIND_MISMATCH:
            raise ValueError(f"volume {volume_id!r} is attached with another access kind")
        if status == FULL:
            raise ValueError(f"volume {volume_id!r} already has {NODE_SLOTS} nodes; refusing {node_id!r}")
        if status == MIGRATION_EXISTS:
            raise ValueError(f"volume {volume_id!r} already has a migration recorded")
        raise ValueError(
            f"volume {volume_id!r}: a migration needs a multi-node block volume with both nodes attached"
        )

    def get(self, volume_id):
        cdef Entry e
        cdef str vid = exact_id(volume_id, "volume_id")
        if not self._snapshot(vid, &e):
            return None
        return self._decode(vid, &e)

    def attach(self, volume_id, node_id, kind, double now):
        cdef str vid = exact_id(volume_id, "volume_id")
        cdef str nid = exact_id(node_id, "node_id")
        cdef int access = check_kind(kind)
        cdef Key k
        cdef Stripe *s
        cdef Py_ssize_t node
        cdef Status status
        check_finite(now, "now")
        make_key(vid, &k)
        node = self._intern(nid)
        s = self._stripe(&k)
        with nogil:
            lock(s)
            status = attach_locked(s, &k, node, access, now)
            unlock(s)
        if status == DONE:
            return True
        if status == UNCHANGED:
            return False
        return self._raise(status, vid, nid)

    def detach(self, volume_id, node_id, double now):
        cdef str vid = exact_id(volume_id, "volume_id")
        cdef str nid = exact_id(node_id, "node_id")
        cdef Key k
        cdef Stripe *s
        cdef Py_ssize_t node
        cdef Status status
        check_finite(now, "now")
        node = self._handle(nid)
        if node < 0:
            return False
        make_key(vid, &k)
        s = self._stripe(&k)
        with nogil:
            lock(s)
            status = detach_locked(s, &k, node, now)
            unlock(s)
        return status == DONE

    def is_attached(self, volume_id, node_id):
        cdef str vid = exact_id(volume_id, "volume_id")
        cdef str nid = exact_id(node_id, "node_id")
        cdef Key k
        cdef Stripe *s
        cdef Slot *slot
        cdef bint found
        cdef Py_ssize_t node = self._handle(nid)
        if node < 0:
            return False
        make_key(vid, &k)
        s = self._stripe(&k)
        with nogil:
            lock(s)
            slot = find(s, &k)
            found = slot != NULL and index_of(&slot.entry, node) >= 0
            unlock(s)
        return found

    def nodes(self, volume_id):
        cdef Entry e
        cdef int i
        if not self._snapshot(exact_id(volume_id, "volume_id"), &e):
            return ()
        return tuple([self._names[e.node[i]] for i in range(e.count)])

    def within_grace(self, volume_id, double now, grace_seconds):
        cdef str vid = exact_id(volume_id, "volume_id")
        cdef double grace
        cdef Key k
        cdef Stripe *s
        cdef Slot *slot
        cdef bint within
        check_finite(now, "now")
        grace = check_grace(grace_seconds)
        make_key(vid, &k)
        s = self._stripe(&k)
        with nogil:
            lock(s)
            slot = find(s, &k)
            within = slot != NULL and slot.entry.detached and now - slot.entry.last_detach_at < grace
            unlock(s)
        return within

    def start_migration(self, volume_id, source, target, started_at, deadline):
        cdef str vid = exact_id(volume_id, "volume_id")
        cdef Entry m
        cdef Key k
        cdef Stripe *s
        cdef Status status
        migration = Migration(source, target, started_at, deadline)
        m.source = self._handle(migration.source)
        m.target = self._handle(migration.target)
        m.started_at = migration.started_at
        m.deadline = migration.deadline
        make_key(vid, &k)
        s = self._stripe(&k)
        with nogil:
            lock(s)
            status = start_migration_locked(s, &k, &m)
            unlock(s)
        if status != DONE:
            self._raise(status, vid)

    cdef bint _set_migration(self, object volume_id, bint keep, bint failed) except -1:
        cdef str vid = exact_id(volume_id, "volume_id")
        cdef Key k
        cdef Stripe *s
        cdef Slot *slot
        cdef bint had = False
        make_key(vid, &k)
        s = self._stripe(&k)
        with nogil:
            lock(s)
            slot = find(s, &k)
            if slot != NULL:
                had = slot.entry.migrating
                if had:
                    slot.entry.migrating = keep
                    slot.entry.migration_failed = slot.entry.migration_failed or failed
            unlock(s)
        if slot == NULL:
            raise KeyError(vid)
        return had

    def fail_migration(self, volume_id):
        return self._set_migration(volume_id, True, True)

    def end_migration(self, volume_id):
        return self._set_migration(volume_id, False, False)

    def migration_expired(self, volume_id, double now):
        cdef str vid = exact_id(volume_id, "volume_id")
        cdef Key k
        cdef Stripe *s
        cdef Slot *slot
        cdef bint expired
        check_finite(now, "now")
        make_key(vid, &k)
        s = self._stripe(&k)
        with nogil:
            lock(s)
            slot = find(s, &k)
            expired = slot != NULL and slot.entry.migrating and now >= slot.entry.deadline
            unlock(s)
        return expired

    def compare_and_swap(self, volume_id, expected, new):
        cdef str vid = exact_id(volume_id, "volume_id")
        cdef Entry want, replacement
        cdef Entry *want_ptr = NULL
        cdef Entry *replacement_ptr = NULL
        cdef Key k
        cdef Stripe *s
        cdef Status status
        check_entry(expected, vid, "expected")
        check_entry(new, vid, "new")
        if expected is not None:
            if not self._encode(expected, &want, False):
                return False
            want_ptr = &want
        if new is not None:
            self._encode(new, &replacement, True)
            replacement_ptr = &replacement
        make_key(vid, &k)
        s = self._stripe(&k)
        with nogil:
            lock(s)
            status = swap_locked(s, &k, want_ptr, replacement_ptr)
            unlock(s)
        if status == NO_MEMORY:
            raise MemoryError()
        return status == DONE

    def replace_all(self, entries):
        cdef Stripe *staged = <Stripe *>calloc(self._count, sizeof(Stripe))
        cdef Stripe *s
        cdef Stripe *live
        cdef Slot *slot
        cdef Entry e
        cdef Key k
        cdef size_t i
        cdef Stripe held
        cdef str vid
        if staged == NULL:
            raise MemoryError()
        try:
            for i in range(self._count):
                if init_table(&staged[i], self._stripes[i].shift) != 0:
                    raise MemoryError()
            for entry in entries:
                if not isinstance(entry, VolumeEntry):
                    raise TypeError(f"entries must be VolumeEntry values, not {type(entry).__name__}")
                vid = exact_id(entry.volume_id, "volume_id")
                self._encode(entry, &e, True)
                make_key(vid, &k)
                s = &staged[<size_t>k.hash & self._stripe_mask]
                if find(s, &k) != NULL:
                    raise ValueError(f"volume {vid!r} appears twice")
                slot = add(s, &k)
                if slot == NULL:
                    raise MemoryError()
                slot.entry = e
                s.attachments += e.count
            for i in range(self._count):
                live = &self._stripes[i]
                s = &staged[i]
                with nogil:
                    lock(live)
                    held = live[0]
                    live.slots = s.slots
                    live.mask = s.mask
                    live.used = s.used
                    live.attachments = s.attachments
                    unlock(live)
                s.slots = held.slots  # the old table is freed below, outside the lock
                s.mask = held.mask
        finally:
            for i in range(self._count):
                free_table(&staged[i])
            free(staged)

    def forget(self, volume_id):
        cdef str vid = exact_id(volume_id, "volume_id")
        cdef Key k
        cdef Stripe *s
        cdef Slot *slot
        make_key(vid, &k)
        s = self._stripe(&k)
        with nogil:
            lock(s)
            slot = find(s, &k)
            if slot != NULL:
                remove(s, slot)
            unlock(s)

    cdef list _collect(self, Py_ssize_t node):
        """Volume ids of every entry (node < 0) or of those attached to ``node``, sorted."""
        cdef size_t i, j
        cdef Stripe *s
        cdef Slot *slot
        ids = []
        for i in range(self._count):
            s = &self._stripes[i]
            with nogil:
                lock(s)
            try:
                for j in range(s.mask + 1):
                    slot = &s.slots[j]
                    if slot.key != NULL and (node < 0 or index_of(&slot.entry, node) >= 0):
                        ids.append(PyUnicode_DecodeUTF8(slot.key, slot.size, NULL))
            finally:
                unlock(s)
        ids.sort()
        return ids

    def volume_ids(self):
        return self._collect(-1)

    def volumes_on_node(self, node_id):
        cdef Py_ssize_t node = self._handle(exact_id(node_id, "node_id"))
        if node < 0:
            return []
        return self._collect(node)

    cdef size_t _sum(self, bint attachments) noexcept nogil:
        cdef size_t i, total = 0
        cdef Stripe *s
        for i in range(self._count):
            s = &self._stripes[i]
            lock(s)
            total += s.attachments if attachments else s.used
            unlock(s)
        return total

    def __len__(self):
        cdef size_t total
        with nogil:
            total = self._sum(False)
        return total

    def attached_count(self):
        cdef size_t total
        with nogil:
            total = self._sum(True)
        return total
