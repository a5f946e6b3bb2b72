import Baton

/// Reads `feed` to its end, handing each observation to `observed`, then how it ended to `ended` (nil when it
/// finished, the error when it failed).
func forward(
    _ feed: LeaderChanges,
    observed: @Sendable (LeaderInfo?) -> Void,
    ended: @Sendable ((any Error)?) -> Void
) async {
    do {
        for try await observation in feed { observed(observation) }
        ended(nil)
    } catch {
        ended(error)
    }
}
