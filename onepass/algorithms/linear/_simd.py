"""Explicit vectors for the compiled sparse training: 16 weight columns in one instruction.

The row-by-row loop updates, for every non-zero of a row, the 16-32 columns (models) a
thread owns of one feature's record. Written as a loop over columns, Numba's compiler
vectorizes it, but must first check at run time that none of the six arrays it reads and
writes overlap: ~20 compares and their branches before a loop that then runs once. That
overhead was 3/4 of the loop's time (python /tmp/ok/runvec.py 3 4096: 41 ns per non-zero
for 16 columns with the checks, 21 ns without).

Here the loads, the arithmetic and the stores are emitted as LLVM vector code directly
(``<16 x float>``), so there is nothing to check. The arithmetic is not written twice:
``vector_step`` runs the scalar optimizer step of ``_sparse_training`` (``adam_step``...)
as Python on ``_Vec`` values, whose operators and NumPy functions emit the vector
instructions. Same operations in the same order, no fast-math, so each column gets
the same float32 result as the scalar loop; but for ``np.exp`` (the logistic loss's
gradient, ``vector_map``), which LLVM would call once per lane: vectors compute it as
Cephes' expf does, within 2 ulp of the C library's.

Also here: LLVM's prefetch, the other intrinsic the kernels use.

Numba's disk caches of ``_sparse_training`` and ``_dense_training`` check those files only:
after editing this one, touch them (or delete their ``__pycache__/*.nbi``) so the kernels
are compiled again.
"""

from __future__ import annotations

import types as pytypes
from collections.abc import Callable
from typing import Any

import numpy as np
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.core.registry import CPUDispatcher
from numba.extending import intrinsic

__all__ = ["WIDTH", "prefetch", "prefetch_w", "axpy", "vector_map", "vector_step"]

WIDTH = 16  # float32 per vector: 64 bytes, one cache line, one AVX-512 register
_F32 = ir.FloatType()
_VEC = ir.VectorType(_F32, WIDTH)


def _prefetch_intrinsic(write: int) -> Any:
    """``prefetch(array, flat_index)``: LLVM's prefetch (for reading, or for writing) of the cache line holding
    an element, so the random reads of weight records overlap instead of waiting in turn."""

    @intrinsic
    def prefetch(typingctx, arr, idx):  # pragma: no cover - compiled
        def codegen(context, builder, signature, args):
            ary = context.make_array(signature.args[0])(context, builder, args[0])
            ptr = builder.gep(ary.data, [args[1]])
            i8p, i32 = ir.IntType(8).as_pointer(), ir.IntType(32)
            fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(ir.VoidType(), [i8p, i32, i32, i32]),
                                                "llvm.prefetch.p0")
            builder.call(fn, [builder.bitcast(ptr, i8p), i32(write), i32(3), i32(1)])
            return context.get_dummy_value()

        return types.void(arr, idx), codegen

    return prefetch


prefetch, prefetch_w = _prefetch_intrinsic(0), _prefetch_intrinsic(1)


class _Vec:
    """A ``<16 x float>`` LLVM value being built: arithmetic on it (with another, or a
    scalar, which is broadcast) emits the instruction. NumPy's functions reach it through
    ``__array_ufunc__``, so ``np.sqrt(v)`` and ``np.float32(1) - v`` work too."""

    _UNARY = {np.sqrt: "llvm.sqrt.v16f32", np.absolute: "llvm.fabs.v16f32", np.floor: "llvm.floor.v16f32"}
    # NumPy's maximum and minimum: the first where it compares so with the second, or is NaN
    _PICK = {np.maximum: ">=", np.minimum: "<="}

    def __init__(self, builder: ir.IRBuilder, value: ir.Value) -> None:
        self.builder, self.value = builder, value

    def _lift(self, x: Any) -> ir.Value:
        if isinstance(x, _Vec):
            return x.value
        return ir.Constant(_VEC, [float(np.float32(x))] * WIDTH)

    def _call(self, name: str, *values: ir.Value) -> _Vec:
        fn = cgutils.get_or_insert_function(self.builder.module, ir.FunctionType(_VEC, [_VEC] * len(values)), name)
        return _Vec(self.builder, self.builder.call(fn, list(values)))

    def __array_ufunc__(self, ufunc: np.ufunc, method: str, *inputs: Any, **kwargs: Any) -> _Vec:
        if method != "__call__" or kwargs:
            return NotImplemented
        b = self.builder
        v = [self._lift(x) for x in inputs]
        if ufunc in self._UNARY:
            return self._call(self._UNARY[ufunc], v[0])
        if ufunc is np.negative:
            return _Vec(b, b.fneg(v[0]))
        if ufunc in self._PICK:
            return _Vec(b, b.select(b.fcmp_unordered(self._PICK[ufunc], v[0], v[1]), v[0], v[1]))
        if ufunc is np.copysign:
            return self._call("llvm.copysign.v16f32", *v)
        if ufunc is np.exp:
            return self._exp()
        binary = {np.add: b.fadd, np.subtract: b.fsub, np.multiply: b.fmul, np.true_divide: b.fdiv}
        if ufunc in binary:
            return _Vec(b, binary[ufunc](*v))
        raise TypeError(f"no vector form of {ufunc.__name__}")

    def _exp(self) -> _Vec:
        """e^x as Cephes' expf computes it: x = n ln 2 + r, |r| <= ln 2 / 2, e^r by a
        degree-7 polynomial, times 2^n put into the exponent bits; within 2 ulp of the
        C library's expf on -87.3..88.3 (x is kept in that range: e^-87.3 ~ 1e-38 below,
        e^88.3 ~ 2e38 above), NaN for NaN."""
        b = self.builder
        x = np.minimum(np.maximum(self, -87.33654), 88.37626)
        n = np.floor(x * 1.44269504088896341 + 0.5)  # log2(e)
        r = x - n * 0.693359375 - n * -2.12194440e-4
        p = r * 1.9875691500e-4 + 1.3981999507e-3
        for c in (8.3334519073e-3, 4.1665795894e-2, 1.6666665459e-1, 5.0000001201e-1):
            p = p * r + c
        p = p * (r * r) + r + 1.0
        ints = ir.VectorType(ir.IntType(32), WIDTH)
        bits = b.shl(b.add(b.fptosi(n.value, ints), ir.Constant(ints, [127] * WIDTH)), ir.Constant(ints, [23] * WIDTH))
        return p * _Vec(b, b.bitcast(bits, _VEC))

    def __add__(self, o: Any) -> _Vec: return np.add(self, o)
    def __radd__(self, o: Any) -> _Vec: return np.add(o, self)
    def __sub__(self, o: Any) -> _Vec: return np.subtract(self, o)
    def __rsub__(self, o: Any) -> _Vec: return np.subtract(o, self)
    def __mul__(self, o: Any) -> _Vec: return np.multiply(self, o)
    def __rmul__(self, o: Any) -> _Vec: return np.multiply(o, self)
    def __truediv__(self, o: Any) -> _Vec: return np.true_divide(self, o)
    def __rtruediv__(self, o: Any) -> _Vec: return np.true_divide(o, self)
    def __neg__(self) -> _Vec: return np.negative(self)


def _broadcast(builder: ir.IRBuilder, x: ir.Value) -> ir.Value:
    first = builder.insert_element(ir.Constant(_VEC, ir.Undefined), x, ir.Constant(ir.IntType(32), 0))
    return builder.shuffle_vector(first, ir.Constant(_VEC, ir.Undefined),
                                  ir.Constant(ir.VectorType(ir.IntType(32), WIDTH), [0] * WIDTH))


def _pointer(context: Any, builder: ir.IRBuilder, ty: Any, arr: ir.Value, index: ir.Value) -> ir.Value:
    """The address of ``arr.flat[index]`` as a pointer to 16 floats."""
    data = context.make_array(ty)(context, builder, arr).data
    return builder.bitcast(builder.gep(data, [index]), _VEC.as_pointer())


def _python(fn: Any) -> Callable:
    """The Python function behind a compiled one, with the compiled functions it calls
    replaced by theirs too (so it can run on ``_Vec`` values)."""
    py = fn.py_func if isinstance(fn, CPUDispatcher) else fn
    names = {n: _python(g) for n, g in py.__globals__.items() if isinstance(g, CPUDispatcher) and n in py.__code__.co_names}
    return pytypes.FunctionType(py.__code__, {**py.__globals__, **names}, py.__name__, py.__defaults__, py.__closure__)


@intrinsic
def axpy(typingctx, flat, base, x, z, col):  # pragma: no cover - compiled
    """``z[col:col + 16] += x * flat[base:base + 16]``."""
    def codegen(context, builder, sig, args):
        w = builder.load(_pointer(context, builder, sig.args[0], args[0], args[1]), align=4)
        pz = _pointer(context, builder, sig.args[3], args[3], args[4])
        builder.store(builder.fadd(builder.load(pz, align=4), builder.fmul(_broadcast(builder, args[2]), w)), pz,
                      align=4)
        return context.get_dummy_value()

    return types.void(flat, base, x, z, col), codegen


def vector_map(formula: Any) -> Any:
    """An intrinsic ``apply(z, col, consts)``: ``z[col:col + 16] = formula(z[col:col + 16],
    *consts)``, the scalar ``formula`` run on one vector (``consts``: float32 scalars)."""
    body = _python(formula)

    @intrinsic
    def apply(typingctx, z, col, consts):  # pragma: no cover - compiled
        def codegen(context, builder, sig, args):
            p = _pointer(context, builder, sig.args[0], args[0], args[1])
            extra = [_Vec(builder, _broadcast(builder, builder.extract_value(args[2], i)))
                     for i in range(len(sig.args[2]))]
            builder.store(body(_Vec(builder, builder.load(p, align=4)), *extra).value, p, align=4)
            return context.get_dummy_value()

        return types.void(z, col, consts), codegen

    return apply


def vector_step(formula: Any, n_slots: int) -> Any:
    """An intrinsic ``step(flat, base, stride, x, g, lr, wd, l1, col, consts)``: the
    optimizer ``formula`` on 16 columns of one feature's record. Slot ``i`` (weights,
    then moments) is ``flat[base + i * stride:][:16]``, the gradient ``x * g[col:][:16]
    + wd[col:][:16] * weights``; ``formula(*slots, gradient, lr, l1, *consts)`` returns
    the new slots (as ``adam_step`` does for scalars)."""
    body = _python(formula)

    @intrinsic
    def step(typingctx, flat, base, stride, x, g, lr, wd, l1, col, consts):  # pragma: no cover - compiled
        def codegen(context, builder, sig, args):
            flat_, base_, stride_, x_, g_, lr_, wd_, l1_, col_, consts_ = args
            at = [_pointer(context, builder, sig.args[0], flat_, builder.add(base_, builder.mul(stride_, stride_.type(i))))
                  for i in range(n_slots)]
            slots = [_Vec(builder, builder.load(p, align=4)) for p in at]
            column = [_Vec(builder, builder.load(_pointer(context, builder, sig.args[i], arr, col_), align=4))
                      for i, arr in ((4, g_), (5, lr_), (6, wd_), (7, l1_))]
            g, lr, wd, l1 = column
            gradient = _Vec(builder, builder.fmul(_broadcast(builder, x_), g.value)) + wd * slots[0]
            extra = [_Vec(builder, _broadcast(builder, builder.extract_value(consts_, i)))
                     for i in range(len(sig.args[9]))]
            new = body(*slots, gradient, lr, l1, *extra)
            for p, v in zip(at, new, strict=True):
                builder.store(v.value, p, align=4)
            return context.get_dummy_value()

        return types.void(flat, base, stride, x, g, lr, wd, l1, col, consts), codegen

    return step
