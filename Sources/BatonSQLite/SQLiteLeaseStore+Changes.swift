@_spi(BatonStoreKit) import Baton
import Logging
import Synchronization

extension SQLiteLeaseStore {
    /// How often subscriptions read again when inotify cannot be used.
    static let fallbackPollInterval: Duration = .seconds(1)

    /// The leader of `key` now and after every change, pushed from any process sharing the file (see "Changes
    /// across processes" in ``SQLiteLeaseStore``), with expiries seen by a timer at the term's remaining time.
    ///
    /// The sequence ends with the error of a failed read, or with ``BatonError/Code/storeUnavailable`` once
    /// ``run()`` has ended; it ends when the consuming task is cancelled.
    public func changes(key: String) throws -> LeaderChanges {
        try LeaderChanges.observing { try observe(key: key, $0) }
    }

    /// The push form of ``changes(key:)``: no task waits while the key does not change. Every observer of a key in
    /// this instance shares one feed, which reads once per change however many electors follow the key.
    ///
    /// A key whose term expired while candidates wait in its queue is handed to the first of them by the feed's
    /// read (see ``acquire(key:holder:ttl:metadata:waiting:)``), so the feed names the next leader at once.
    public func observe(key: String, _ observer: @escaping LeaderObserver) throws -> ChangeObservation {
        try observations.observe(key, observer) { [self] observer in
            LeaderChangeFeed.observe(
                clock: timer,
                signals: signals.subscribe(key),
                pollInterval: { [self] _ in
                    // Asked after each read, which waits for run() to be ready: by then it has tried to watch.
                    let pushed = state.withLock { $0.pushed } ?? true
                    return configuration.changesPollInterval ?? (pushed ? nil : Self.fallbackPollInterval)
                },
                read: { [self] in try await look(key: key) },
                observer: observer
            )
        }
    }

    /// Wakes this instance's subscribers of `key` and, through the change file, every other process's.
    func publishChange(of key: String) {
        signals.notify(key)
        if let code = ChangeFile.touch(sidecarPath) {
            logger.warning(
                "baton: cannot write the change file; other processes see this change only at expiry or by polling",
                metadata: ["file": "\(sidecarPath)", "error": "\(ChangeFile.describe(code))"]
            )
        }
    }

    /// Starts watching the change file with inotify, and records whether changes are pushed.
    /// - Returns: the watcher, or nil if inotify could not be set up (subscriptions then poll).
    func startWatching() -> ChangeFileWatcher? {
        do {
            let watcher = try ChangeFileWatcher(path: sidecarPath, signals: signals, logger: logger)
            state.withLock { $0.pushed = true }
            return watcher
        } catch {
            logger.warning(
                "baton: cannot watch the change file; changes from other processes are seen by polling",
                metadata: ["file": "\(sidecarPath)", "error": "\(error.message)"]
            )
            state.withLock { $0.pushed = false }
            return nil
        }
    }
}
