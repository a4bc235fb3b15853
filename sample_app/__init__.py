"""The sample OTP service (see issue 4)."""
