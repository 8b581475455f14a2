//! Four u32 lanes: wasm SIMD128 when the module is built with `+simd128`, plain arrays
//! elsewhere (native tests and benchmarks, where the compiler vectorizes them itself).

#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
mod imp {
    use core::arch::wasm32::*;

    /// Four u32 lanes in one v128 register.
    #[derive(Clone, Copy)]
    pub struct U32x4(v128);

    impl U32x4 {
        #[inline(always)]
        pub fn splat(x: u32) -> Self {
            Self(u32x4_splat(x))
        }
        #[inline(always)]
        pub fn new(lanes: [u32; 4]) -> Self {
            Self(u32x4(lanes[0], lanes[1], lanes[2], lanes[3]))
        }
        #[inline(always)]
        pub fn to_array(self) -> [u32; 4] {
            [
                u32x4_extract_lane::<0>(self.0),
                u32x4_extract_lane::<1>(self.0),
                u32x4_extract_lane::<2>(self.0),
                u32x4_extract_lane::<3>(self.0),
            ]
        }
        #[inline(always)]
        pub fn add(self, o: Self) -> Self {
            Self(i32x4_add(self.0, o.0))
        }
        #[inline(always)]
        pub fn xor(self, o: Self) -> Self {
            Self(v128_xor(self.0, o.0))
        }
        #[inline(always)]
        pub fn and(self, o: Self) -> Self {
            Self(v128_and(self.0, o.0))
        }
        #[inline(always)]
        pub fn or(self, o: Self) -> Self {
            Self(v128_or(self.0, o.0))
        }
        #[inline(always)]
        pub fn shr(self, n: u32) -> Self {
            Self(u32x4_shr(self.0, n))
        }
        #[inline(always)]
        pub fn shl(self, n: u32) -> Self {
            Self(i32x4_shl(self.0, n))
        }
        /// Whether any lane of `self & mask` equals `value`'s.
        #[inline(always)]
        pub fn any_masked_eq(self, mask: Self, value: Self) -> bool {
            v128_any_true(i32x4_eq(v128_and(self.0, mask.0), value.0))
        }
    }
}

#[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
mod imp {
    /// Four u32 lanes as an array.
    #[derive(Clone, Copy)]
    pub struct U32x4([u32; 4]);

    impl U32x4 {
        #[inline(always)]
        fn map2(self, o: Self, f: impl Fn(u32, u32) -> u32) -> Self {
            Self([
                f(self.0[0], o.0[0]),
                f(self.0[1], o.0[1]),
                f(self.0[2], o.0[2]),
                f(self.0[3], o.0[3]),
            ])
        }
        #[inline(always)]
        pub fn splat(x: u32) -> Self {
            Self([x; 4])
        }
        #[inline(always)]
        pub fn new(lanes: [u32; 4]) -> Self {
            Self(lanes)
        }
        #[inline(always)]
        pub fn to_array(self) -> [u32; 4] {
            self.0
        }
        #[inline(always)]
        pub fn add(self, o: Self) -> Self {
            self.map2(o, u32::wrapping_add)
        }
        #[inline(always)]
        pub fn xor(self, o: Self) -> Self {
            self.map2(o, |a, b| a ^ b)
        }
        #[inline(always)]
        pub fn and(self, o: Self) -> Self {
            self.map2(o, |a, b| a & b)
        }
        #[inline(always)]
        pub fn or(self, o: Self) -> Self {
            self.map2(o, |a, b| a | b)
        }
        #[inline(always)]
        pub fn shr(self, n: u32) -> Self {
            Self(self.0.map(|a| a >> n))
        }
        #[inline(always)]
        pub fn shl(self, n: u32) -> Self {
            Self(self.0.map(|a| a << n))
        }
        /// Whether any lane of `self & mask` equals `value`'s.
        #[inline(always)]
        pub fn any_masked_eq(self, mask: Self, value: Self) -> bool {
            (0..4).any(|i| self.0[i] & mask.0[i] == value.0[i])
        }
    }
}

pub use imp::U32x4;

impl U32x4 {
    /// Rotate right by `n` (0 < n < 32).
    #[inline(always)]
    pub fn rotr(self, n: u32) -> Self {
        self.shr(n).or(self.shl(32 - n))
    }
}
