"""Call policies: rate limits, deadlines, priority admission."""
