;; SIMD kernels for the algorithms' host-side vector math (shared/math/arena.ts).
;;
;; Why WebAssembly: V8 runs the equivalent JS loops scalar, converting every float32 to float64
;; and back, which costs ~6 ms for a 5-input mix of 1M parameters although the memory system on
;; the same machine moves those 24 MB in ~1.5 ms. f32x4 lanes do four elements per instruction.
;;
;; Conventions: every pointer is a byte offset into the imported memory, 16-byte aligned; n is a
;; count of float32 elements and is rounded UP to a multiple of 4 by the caller's layout (arena
;; slots are padded), so the loops need no scalar tail. Arithmetic is float32 (the JS fallback
;; rounds once from float64, so results can differ in the last bit).
;;
;; Regenerate shared/math/kernels-wasm.ts after editing: npx tsx tools/build-wasm.ts
(module
  (import "env" "memory" (memory 1))

  ;; out = w0·a + w1·b
  (func (export "mix2") (param $out i32) (param $n i32) (param $a i32) (param $b i32)
        (param $w0 f32) (param $w1 f32)
    (local $i i32) (local $end i32) (local $v0 v128) (local $v1 v128)
    (local.set $v0 (f32x4.splat (local.get $w0)))
    (local.set $v1 (f32x4.splat (local.get $w1)))
    (local.set $end (i32.shl (local.get $n) (i32.const 2)))
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $i) (local.get $end)))
        (v128.store (i32.add (local.get $out) (local.get $i))
          (f32x4.add
            (f32x4.mul (local.get $v0) (v128.load (i32.add (local.get $a) (local.get $i))))
            (f32x4.mul (local.get $v1) (v128.load (i32.add (local.get $b) (local.get $i))))))
        (local.set $i (i32.add (local.get $i) (i32.const 16)))
        (br $next))))

  ;; out = w0·a + w1·b + w2·c
  (func (export "mix3") (param $out i32) (param $n i32) (param $a i32) (param $b i32) (param $c i32)
        (param $w0 f32) (param $w1 f32) (param $w2 f32)
    (local $i i32) (local $end i32) (local $v0 v128) (local $v1 v128) (local $v2 v128)
    (local.set $v0 (f32x4.splat (local.get $w0)))
    (local.set $v1 (f32x4.splat (local.get $w1)))
    (local.set $v2 (f32x4.splat (local.get $w2)))
    (local.set $end (i32.shl (local.get $n) (i32.const 2)))
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $i) (local.get $end)))
        (v128.store (i32.add (local.get $out) (local.get $i))
          (f32x4.add
            (f32x4.add
              (f32x4.mul (local.get $v0) (v128.load (i32.add (local.get $a) (local.get $i))))
              (f32x4.mul (local.get $v1) (v128.load (i32.add (local.get $b) (local.get $i)))))
            (f32x4.mul (local.get $v2) (v128.load (i32.add (local.get $c) (local.get $i))))))
        (local.set $i (i32.add (local.get $i) (i32.const 16)))
        (br $next))))

  ;; out = w0·a + w1·b + w2·c + w3·d
  (func (export "mix4") (param $out i32) (param $n i32) (param $a i32) (param $b i32) (param $c i32) (param $d i32)
        (param $w0 f32) (param $w1 f32) (param $w2 f32) (param $w3 f32)
    (local $i i32) (local $end i32) (local $v0 v128) (local $v1 v128) (local $v2 v128) (local $v3 v128)
    (local.set $v0 (f32x4.splat (local.get $w0)))
    (local.set $v1 (f32x4.splat (local.get $w1)))
    (local.set $v2 (f32x4.splat (local.get $w2)))
    (local.set $v3 (f32x4.splat (local.get $w3)))
    (local.set $end (i32.shl (local.get $n) (i32.const 2)))
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $i) (local.get $end)))
        (v128.store (i32.add (local.get $out) (local.get $i))
          (f32x4.add
            (f32x4.add
              (f32x4.mul (local.get $v0) (v128.load (i32.add (local.get $a) (local.get $i))))
              (f32x4.mul (local.get $v1) (v128.load (i32.add (local.get $b) (local.get $i)))))
            (f32x4.add
              (f32x4.mul (local.get $v2) (v128.load (i32.add (local.get $c) (local.get $i))))
              (f32x4.mul (local.get $v3) (v128.load (i32.add (local.get $d) (local.get $i)))))))
        (local.set $i (i32.add (local.get $i) (i32.const 16)))
        (br $next))))

  ;; out = w0·a + w1·b + w2·c + w3·d + w4·e   (self + 4 neighbours in one pass)
  (func (export "mix5") (param $out i32) (param $n i32) (param $a i32) (param $b i32) (param $c i32) (param $d i32) (param $e i32)
        (param $w0 f32) (param $w1 f32) (param $w2 f32) (param $w3 f32) (param $w4 f32)
    (local $i i32) (local $end i32) (local $v0 v128) (local $v1 v128) (local $v2 v128) (local $v3 v128) (local $v4 v128)
    (local.set $v0 (f32x4.splat (local.get $w0)))
    (local.set $v1 (f32x4.splat (local.get $w1)))
    (local.set $v2 (f32x4.splat (local.get $w2)))
    (local.set $v3 (f32x4.splat (local.get $w3)))
    (local.set $v4 (f32x4.splat (local.get $w4)))
    (local.set $end (i32.shl (local.get $n) (i32.const 2)))
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $i) (local.get $end)))
        (v128.store (i32.add (local.get $out) (local.get $i))
          (f32x4.add
            (f32x4.add
              (f32x4.add
                (f32x4.mul (local.get $v0) (v128.load (i32.add (local.get $a) (local.get $i))))
                (f32x4.mul (local.get $v1) (v128.load (i32.add (local.get $b) (local.get $i)))))
              (f32x4.add
                (f32x4.mul (local.get $v2) (v128.load (i32.add (local.get $c) (local.get $i))))
                (f32x4.mul (local.get $v3) (v128.load (i32.add (local.get $d) (local.get $i))))))
            (f32x4.mul (local.get $v4) (v128.load (i32.add (local.get $e) (local.get $i))))))
        (local.set $i (i32.add (local.get $i) (i32.const 16)))
        (br $next))))

  ;; Heavy ball with an L2 term λ·x, then a step from a base point:
  ;;   m = β·m + g + λ·x ;  x = base − lr·m
  ;; base = x gives the plain step; base = the mixed model gives DPSGD's AWC update (§3).
  (func (export "momentum") (param $x i32) (param $m i32) (param $g i32) (param $base i32) (param $n i32)
        (param $beta f32) (param $lr f32) (param $wd f32)
    (local $i i32) (local $end i32) (local $vb v128) (local $vl v128) (local $vw v128) (local $mi v128)
    (local.set $vb (f32x4.splat (local.get $beta)))
    (local.set $vl (f32x4.splat (local.get $lr)))
    (local.set $vw (f32x4.splat (local.get $wd)))
    (local.set $end (i32.shl (local.get $n) (i32.const 2)))
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $i) (local.get $end)))
        (local.set $mi
          (f32x4.add
            (f32x4.add
              (f32x4.mul (local.get $vb) (v128.load (i32.add (local.get $m) (local.get $i))))
              (v128.load (i32.add (local.get $g) (local.get $i))))
            (f32x4.mul (local.get $vw) (v128.load (i32.add (local.get $x) (local.get $i))))))
        (v128.store (i32.add (local.get $m) (local.get $i)) (local.get $mi))
        (v128.store (i32.add (local.get $x) (local.get $i))
          (f32x4.sub
            (v128.load (i32.add (local.get $base) (local.get $i)))
            (f32x4.mul (local.get $vl) (local.get $mi))))
        (local.set $i (i32.add (local.get $i) (i32.const 16)))
        (br $next))))

  ;; Σ (a − b)² accumulated in float64 lanes (a float32 sum over 1M terms would lose digits).
  ;; Padding lanes are included: callers pass vectors whose padding is equal (both zero).
  (func (export "sqdist") (param $a i32) (param $b i32) (param $n i32) (result f64)
    (local $i i32) (local $end i32) (local $diff v128) (local $acc v128)
    (local.set $end (i32.shl (local.get $n) (i32.const 2)))
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $i) (local.get $end)))
        (local.set $diff
          (f32x4.sub
            (v128.load (i32.add (local.get $a) (local.get $i)))
            (v128.load (i32.add (local.get $b) (local.get $i)))))
        (local.set $acc
          (f64x2.add (local.get $acc)
            (f64x2.mul (f64x2.promote_low_f32x4 (local.get $diff)) (f64x2.promote_low_f32x4 (local.get $diff)))))
        (local.set $diff (i8x16.shuffle 8 9 10 11 12 13 14 15 0 1 2 3 4 5 6 7 (local.get $diff) (local.get $diff)))
        (local.set $acc
          (f64x2.add (local.get $acc)
            (f64x2.mul (f64x2.promote_low_f32x4 (local.get $diff)) (f64x2.promote_low_f32x4 (local.get $diff)))))
        (local.set $i (i32.add (local.get $i) (i32.const 16)))
        (br $next)))
    (f64.add (f64x2.extract_lane 0 (local.get $acc)) (f64x2.extract_lane 1 (local.get $acc))))
)
