import Foundation

/// A name no other test or run uses: `<prefix>-<8 random hex digits>`, so tests sharing a store or a server never
/// collide (and keys left by a crashed run are never reused).
public func unique(_ prefix: String) -> String { "\(prefix)-\(UUID().uuidString.prefix(8))" }
