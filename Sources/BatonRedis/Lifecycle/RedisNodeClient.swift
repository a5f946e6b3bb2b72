@_spi(BatonStoreKit) import Baton
import NIOCore
import Synchronization

/// A small pool of pipelined connections to one Redis server, connected on demand and reconnected with
/// backoff.
///
/// Commands go round-robin over the open connections (each of which pipelines any number of commands), and a
/// pool slot without a connection is connected in the background: by the store's ``RedisConnectionLoop``, in
/// its `run()`. After a failed connection attempt the slot waits before trying again, doubling the wait up to
/// ``maxBackoff``; while every slot waits, commands fail at once with ``BatonError/Code/storeUnavailable``
/// instead of piling up. A connection that closes (a server restart) is replaced by the next command, without
/// waiting.
final class RedisNodeClient: Sendable {
    private struct Slot {
        var connection: RedisConnection?
        var connecting: RedisPending<RedisConnection>?
        var failures = 0
        /// When the slot may try again, on the store's clock.
        var retryAt: Duration?
        var lastError: BatonError?
    }

    private struct State {
        var slots: [Slot]
        var next = 0
        var closed = false
    }

    private enum Step {
        case ready(RedisConnection)
        case wait(RedisPending<RedisConnection>)
        case fail(BatonError)
    }

    let endpoint: RedisEndpoint
    private let group: any EventLoopGroup
    private let loop: RedisConnectionLoop
    private let clock: BatonClock
    private let state: Mutex<State>
    /// The first wait after a failed connection attempt.
    static let minBackoff: Duration = .milliseconds(50)
    /// The longest wait between connection attempts.
    static let maxBackoff: Duration = .seconds(2)

    init(
        endpoint: RedisEndpoint,
        group: any EventLoopGroup,
        poolSize: Int,
        loop: RedisConnectionLoop,
        clock: BatonClock
    ) {
        self.endpoint = endpoint
        self.group = group
        self.loop = loop
        self.clock = clock
        self.state = Mutex(State(slots: Array(repeating: Slot(), count: max(1, poolSize))))
    }

    /// Sends `command` on one of the pool's connections. An error reply is returned as a value.
    func send(_ command: RESPCommand) async throws -> RESPValue {
        try await connection().send(command)
    }

    /// Runs `script` with EVALSHA, loading it with EVAL when the server does not have it (NOSCRIPT: a restart, a
    /// SCRIPT FLUSH). A reply that is an error is thrown as ``BatonError`` (`unauthorized` for ACL errors, else
    /// `storeUnavailable`).
    func run(_ script: RedisScript, keys: [String], arguments: [String]) async throws -> RESPValue {
        let tail = [String(keys.count)] + keys + arguments
        var reply = try await send(RESPCommand("EVALSHA", [script.sha1] + tail))
        if let message = reply.errorMessage, message.hasPrefix("NOSCRIPT") {
            reply = try await send(RESPCommand("EVAL", [script.source] + tail))
        }
        if let message = reply.errorMessage {
            if RedisConnection.isAuthError(message) {
                throw BatonError.unauthorized(
                    "\(endpoint) refused script \(script.name): \(RedisConnection.firstWord(message))")
            }
            throw BatonError.storeUnavailable("\(endpoint) failed script \(script.name): \(message)")
        }
        return reply
    }

    /// An open connection: a ready one, or one being connected.
    func connection() async throws -> RedisConnection {
        let now = clock.now()
        var submitted: (Int, RedisPending<RedisConnection>)?
        let step = state.withLock { state -> Step in
            if state.closed { return .fail(closedError) }
            let count = state.slots.count
            let start = state.next
            state.next = (state.next + 1) % count
            // Fill the chosen slot in the background if it is empty, and use any open connection meanwhile.
            if state.slots[start].connection == nil, state.slots[start].connecting == nil,
                state.slots[start].retryAt.map({ $0 <= now }) ?? true
            {
                let pending = RedisPending<RedisConnection>()
                state.slots[start].connecting = pending
                submitted = (start, pending)
            }
            for offset in 0..<count {
                let index = (start + offset) % count
                if let connection = state.slots[index].connection, connection.isActive { return .ready(connection) }
            }
            for offset in 0..<count {
                if let pending = state.slots[(start + offset) % count].connecting { return .wait(pending) }
            }
            let error = state.slots[start].lastError ?? .storeUnavailable("cannot connect to \(endpoint)")
            return .fail(error)
        }
        if let (index, pending) = submitted {
            let accepted = loop.submit { [self] in await connect(slot: index, pending) }
            if !accepted { ended(slot: index, pending) }
        }
        switch step {
        case .ready(let connection): return connection
        case .wait(let pending): return try await pending.value()
        case .fail(let error): throw error
        }
    }

    private var closedError: BatonError {
        .storeUnavailable("the Redis client for \(endpoint) is closed (the store's run() has returned)")
    }

    /// Connects slot `index`: the loop's work, in the store's `run()`.
    private func connect(slot index: Int, _ pending: RedisPending<RedisConnection>) async {
        do {
            let connection = try await RedisConnection.connect(to: endpoint, group: group)
            if connected(connection, slot: index) {
                pending.resolve(.success(connection))
            } else {
                await connection.close()
                pending.resolve(.failure(closedError))
            }
        } catch {
            // Cancelled: the store's run() is ending.
            let failure =
                error is CancellationError || state.withLock(\.closed)
                ? closedError
                : error as? BatonError
                    ?? .storeUnavailable("cannot connect to \(endpoint): \(error)", underlying: error)
            failed(failure, slot: index)
            pending.resolve(.failure(failure))
        }
    }

    /// The loop refused the work: the store's run() has ended.
    private func ended(slot index: Int, _ pending: RedisPending<RedisConnection>) {
        state.withLock { state in
            if state.slots[index].connecting === pending { state.slots[index].connecting = nil }
        }
        pending.resolve(.failure(closedError))
    }

    private func connected(_ connection: RedisConnection, slot index: Int) -> Bool {
        let keep = state.withLock { state -> Bool in
            state.slots[index].connecting = nil
            if state.closed { return false }
            state.slots[index].connection = connection
            state.slots[index].failures = 0
            state.slots[index].retryAt = nil
            state.slots[index].lastError = nil
            return true
        }
        if keep {
            connection.channel.closeFuture.whenComplete { [weak self] _ in
                self?.state.withLock { state in
                    if state.slots[index].connection === connection { state.slots[index].connection = nil }
                }
            }
        }
        return keep
    }

    private func failed(_ error: BatonError, slot index: Int) {
        let now = clock.now()
        state.withLock { state in
            state.slots[index].connecting = nil
            state.slots[index].failures += 1
            let exponent = min(state.slots[index].failures - 1, 10)
            let wait = min(Self.minBackoff * (1 << exponent), Self.maxBackoff)
            state.slots[index].retryAt = now + wait * Double.random(in: 0.5...1.0)
            state.slots[index].lastError = error
        }
    }

    /// The connections open now.
    var openConnections: [RedisConnection] {
        state.withLock { state in state.slots.compactMap(\.connection).filter(\.isActive) }
    }

    /// Closes every connection; later commands fail with ``BatonError/Code/storeUnavailable``. Called when the
    /// store's `run()` ends, after its ``RedisConnectionLoop`` has stopped.
    func close() async {
        let (connections, pending) = state.withLock { state in
            state.closed = true
            let connections = state.slots.compactMap(\.connection)
            let pending = state.slots.compactMap(\.connecting)
            for index in state.slots.indices { state.slots[index] = Slot() }
            return (connections, pending)
        }
        for waiting in pending { waiting.resolve(.failure(closedError)) }
        for connection in connections { await connection.close() }
    }
}

/// A Lua script run by EVALSHA, named by the SHA-1 of its source.
struct RedisScript: Sendable {
    /// A short name for errors.
    let name: String
    /// The Lua source.
    let source: String
    /// The SHA-1 of the source, in hex.
    let sha1: String

    init(name: String, source: String) {
        self.name = name
        self.source = source
        self.sha1 = SHA1.hex(source)
    }
}
