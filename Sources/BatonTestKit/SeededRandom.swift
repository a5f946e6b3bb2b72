/// A small, fast, deterministic random number generator (SplitMix64), so that a randomized test run can be
/// repeated exactly from its seed.
///
/// The same seed always yields the same sequence, on every platform and Swift version. It is not suitable for
/// cryptography. A value type: copying it copies its position in the sequence.
///
/// ```swift
/// var random = SeededRandom(seed: 42)
/// let delay = Int.random(in: 0..<100, using: &random)
/// ```
public struct SeededRandom: RandomNumberGenerator, Sendable, Hashable {
    /// The generator's internal state; it advances by a fixed odd constant on every ``next()``.
    public private(set) var state: UInt64

    /// A generator at the start of the sequence for `seed`.
    public init(seed: UInt64) {
        state = seed
    }

    /// The next 64 random bits of the sequence.
    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var mixed = state
        mixed = (mixed ^ (mixed >> 30)) &* 0xBF58_476D_1CE4_E5B9
        mixed = (mixed ^ (mixed >> 27)) &* 0x94D0_49BB_1331_11EB
        return mixed ^ (mixed >> 31)
    }
}
