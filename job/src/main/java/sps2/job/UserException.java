package sps2.job;

/** A problem with what the user asked for, reported as one line and exit code 2. */
public class UserException extends RuntimeException {
    public UserException(String message) {
        super(message);
    }
}
