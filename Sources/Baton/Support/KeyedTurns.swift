import Synchronization

/// Turns per key: the bodies given for one key run one at a time, in arrival order; bodies of different keys run
/// concurrently. A body waiting for its turn waits even if its task is cancelled (the turn ahead of it ends on its
/// own), then runs and can see the cancellation.
package final class KeyedTurns: Sendable {
    /// Keys with a body running, and the bodies waiting for each, in arrival order.
    private let busy = Mutex<[String: [CheckedContinuation<Void, Never>]]>([:])

    package init() {}

    /// Runs `body` in `key`'s turn.
    package func run<T>(_ key: String, _ body: () async throws -> T) async rethrows -> T {
        await enter(key)
        defer { leave(key) }
        return try await body()
    }

    /// How many bodies of `key` wait for their turn.
    package func waitingCount(for key: String) -> Int {
        busy.withLock { $0[key]?.count ?? 0 }
    }

    private func enter(_ key: String) async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let free = busy.withLock { busy in
                guard busy[key] != nil else {
                    busy[key] = []
                    return true
                }
                busy[key]!.append(continuation)
                return false
            }
            if free { continuation.resume() }
        }
    }

    private func leave(_ key: String) {
        let next = busy.withLock { busy -> CheckedContinuation<Void, Never>? in
            guard var waiting = busy[key], !waiting.isEmpty else {
                busy[key] = nil
                return nil
            }
            let next = waiting.removeFirst()
            busy[key] = waiting
            return next
        }
        next?.resume()
    }
}
