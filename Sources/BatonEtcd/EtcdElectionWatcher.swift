import Baton
import Foundation
import Synchronization

/// One watch and one reader per key and store, shared by every ``EtcdLeaseStore/changes(key:)`` subscriber of
/// the key: a change is read once per store, not once per subscriber, and waiting candidates of this store can be
/// told "not yet" from the latest snapshot without asking etcd again.
final class EtcdElectionWatcher: Sendable {
    typealias Snapshot = Result<[EtcdLeaseStore.Candidate], any Error>

    private struct State {
        var subscribers: [Int: AsyncStream<Snapshot>.Continuation] = [:]
        var nextID = 0
        var latest: [EtcdLeaseStore.Candidate]?
        /// Counts the watch's events (and new subscriptions and watch restarts); a snapshot is fresh while the
        /// count is what it was when its read began.
        var generation = 0
        var latestGeneration: Int?
        var watching = false
    }

    private let state = Mutex(State())
    private let wake: AsyncStream<Void>.Continuation
    private let task: Mutex<Task<Void, Never>?> = Mutex(nil)

    /// Starts watching `prefix`; `read` reads the election after every change.
    init(
        client: EtcdClient,
        prefix: Data,
        read: @escaping @Sendable () async throws -> [EtcdLeaseStore.Candidate]
    ) {
        let (wakes, wake) = AsyncStream<Void>.makeStream(bufferingPolicy: .bufferingNewest(1))
        self.wake = wake
        // The task holds the watcher until `stop()` ends it (the store stops every watcher it made).
        let task = Task { [self] in
            await withDiscardingTaskGroup { group in
                group.addTask {
                    var failures = 0
                    while !Task.isCancelled, !client.isClosed {
                        let started = ContinuousClock.now
                        do {
                            try await EtcdLeaseStore.watch(client, prefix: prefix) {
                                self.state.withLock { state in
                                    state.watching = true
                                    state.generation += 1
                                }
                                wake.yield()
                            }
                        } catch {
                            self.state.withLock { state in
                                state.watching = false
                                state.generation += 1
                            }
                            if Task.isCancelled || client.isClosed { break }
                            // Read again, so a change during the gap is not missed (or the read's error ends the
                            // feeds); a watch that ran for a while before failing starts the backoff afresh.
                            wake.yield()
                            failures = ContinuousClock.now - started > .seconds(5) ? 1 : failures + 1
                            try? await Task.sleep(for: .milliseconds(min(2000, 50 * (1 << min(failures, 6)))))
                        }
                    }
                    wake.finish()
                }
                for await _ in wakes {
                    let generation = self.state.withLock { $0.generation }
                    let snapshot: Snapshot
                    do {
                        let election = try await read()
                        snapshot = .success(election)
                        self.state.withLock { state in
                            state.latest = election
                            state.latestGeneration = generation
                        }
                    } catch {
                        snapshot = .failure(error)
                    }
                    let subscribers = self.state.withLock { Array($0.subscribers.values) }
                    for subscriber in subscribers { subscriber.yield(snapshot) }
                }
                group.cancelAll()
            }
            let subscribers = self.state.withLock { Array($0.subscribers.values) }
            for subscriber in subscribers { subscriber.finish() }
        }
        self.task.withLock { $0 = task }
    }

    /// A new subscriber: its stream gets a snapshot read after this call, then one after every change.
    func subscribe() -> (id: Int, snapshots: AsyncStream<Snapshot>) {
        let (snapshots, continuation) = AsyncStream<Snapshot>.makeStream(bufferingPolicy: .bufferingNewest(1))
        let id = state.withLock { state in
            let id = state.nextID
            state.nextID += 1
            state.subscribers[id] = continuation
            state.generation += 1
            return id
        }
        wake.yield()
        return (id, snapshots)
    }

    /// Removes a subscriber.
    func unsubscribe(_ id: Int) {
        state.withLock { $0.subscribers[id] = nil }
    }

    /// Whether no one subscribes.
    var isIdle: Bool { state.withLock { $0.subscribers.isEmpty } }

    /// The latest snapshot if no change was seen since its read began and the watch is running, else nil.
    var freshSnapshot: [EtcdLeaseStore.Candidate]? {
        state.withLock { state in
            state.watching && state.latestGeneration == state.generation ? state.latest : nil
        }
    }

    func stop() {
        task.withLock { $0?.cancel() }
        wake.finish()
    }
}
