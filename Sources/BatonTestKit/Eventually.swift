/// Waits in real time until `condition` holds, checking it every `interval` for at most `timeout`.
///
/// For what a test cannot drive step by step (another process, a real server, a background task); decisions that
/// depend on time are tested on a ``ManualClock`` instead.
/// - Returns: whether `condition` held; after `timeout` it is checked one last time.
/// - Throws: what `condition` throws, or `CancellationError` if the task is cancelled while waiting.
public func eventually(
    timeout: Duration = .seconds(10),
    interval: Duration = .milliseconds(5),
    _ condition: () async throws -> Bool
) async throws -> Bool {
    let deadline = ContinuousClock.now + timeout
    while ContinuousClock.now < deadline {
        if try await condition() { return true }
        try await Task.sleep(for: interval)
    }
    return try await condition()
}
