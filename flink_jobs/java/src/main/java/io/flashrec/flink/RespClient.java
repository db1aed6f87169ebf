package io.flashrec.flink;

import java.io.BufferedInputStream;
import java.io.BufferedOutputStream;
import java.io.Closeable;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.InetSocketAddress;
import java.net.Socket;
import java.net.URI;
import java.net.URLDecoder;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;

/**
 * A tiny synchronous RESP2 client over a plain socket (no Jedis jar is available to PyFlink).
 *
 * <p>Replies map to Java as: simple string and bulk string -> String (UTF-8), integer -> Long,
 * array -> List&lt;Object&gt;, null bulk/array -> null; an error reply throws {@link RedisError}.
 * Not thread-safe: use one client per thread.
 */
final class RespClient implements Closeable {

    /** An error reply from the server (e.g. "BUSYGROUP ...", "NOGROUP ..."). */
    static final class RedisError extends IOException {
        private static final long serialVersionUID = 1L;

        RedisError(String message) {
            super(message);
        }
    }

    private final Socket socket;
    private final InputStream in;
    private final OutputStream out;

    private RespClient(Socket socket) throws IOException {
        this.socket = socket;
        this.in = new BufferedInputStream(socket.getInputStream(), 1 << 16);
        this.out = new BufferedOutputStream(socket.getOutputStream(), 1 << 14);
    }

    /**
     * Connects to {@code redis://[[user]:password@]host[:port][/db]}; {@code readTimeoutMs} must be
     * longer than any BLOCK time used with this client.
     */
    static RespClient connect(String redisUrl, int readTimeoutMs) throws IOException {
        URI uri = URI.create(redisUrl);
        if (!"redis".equals(uri.getScheme())) {
            throw new IllegalArgumentException("only redis:// URLs are supported, got " + redisUrl);
        }
        String host = uri.getHost() == null ? "127.0.0.1" : uri.getHost();
        int port = uri.getPort() < 0 ? 6379 : uri.getPort();
        Socket socket = new Socket();
        socket.setTcpNoDelay(true);
        socket.setKeepAlive(true);
        socket.connect(new InetSocketAddress(host, port), 10_000);
        socket.setSoTimeout(readTimeoutMs);
        RespClient client = new RespClient(socket);
        try {
            String userInfo = uri.getRawUserInfo();
            if (userInfo != null && !userInfo.isEmpty()) {
                int colon = userInfo.indexOf(':');
                String user = colon < 0 ? "" : decode(userInfo.substring(0, colon));
                String password = decode(colon < 0 ? userInfo : userInfo.substring(colon + 1));
                if (user.isEmpty()) {
                    client.call("AUTH", password);
                } else {
                    client.call("AUTH", user, password);
                }
            }
            String path = uri.getPath();
            if (path != null && path.length() > 1) {
                client.call("SELECT", path.substring(1));
            }
        } catch (IOException | RuntimeException e) {
            client.close();
            throw e;
        }
        return client;
    }

    private static String decode(String s) {
        return URLDecoder.decode(s, StandardCharsets.UTF_8);
    }

    /** Sends one command and returns its reply. */
    Object call(String... args) throws IOException {
        return call(List.of(args));
    }

    Object call(List<String> args) throws IOException {
        writeCommand(args);
        out.flush();
        return readReply();
    }

    private void writeCommand(List<String> args) throws IOException {
        out.write(('*' + Integer.toString(args.size()) + "\r\n").getBytes(StandardCharsets.US_ASCII));
        for (String arg : args) {
            byte[] bytes = arg.getBytes(StandardCharsets.UTF_8);
            out.write(('$' + Integer.toString(bytes.length) + "\r\n").getBytes(StandardCharsets.US_ASCII));
            out.write(bytes);
            out.write('\r');
            out.write('\n');
        }
    }

    private Object readReply() throws IOException {
        int type = in.read();
        if (type < 0) {
            throw new IOException("connection closed by redis");
        }
        switch (type) {
            case '+':
                return readLine();
            case '-':
                throw new RedisError(readLine());
            case ':':
                return Long.parseLong(readLine());
            case '$': {
                int len = Integer.parseInt(readLine());
                if (len < 0) {
                    return null;
                }
                byte[] buf = in.readNBytes(len);
                if (buf.length != len) {
                    throw new IOException("connection closed mid-reply");
                }
                readLine(); // trailing CRLF
                return new String(buf, StandardCharsets.UTF_8);
            }
            case '*': {
                int n = Integer.parseInt(readLine());
                if (n < 0) {
                    return null;
                }
                List<Object> items = new ArrayList<>(n);
                for (int i = 0; i < n; i++) {
                    items.add(readReply());
                }
                return items;
            }
            default:
                throw new IOException("unexpected RESP type byte: " + (char) type);
        }
    }

    private String readLine() throws IOException {
        StringBuilder sb = new StringBuilder();
        int c;
        while ((c = in.read()) != '\r') {
            if (c < 0) {
                throw new IOException("connection closed mid-reply");
            }
            sb.append((char) c);
        }
        in.read(); // '\n'
        return sb.toString();
    }

    @Override
    public void close() {
        try {
            socket.close();
        } catch (IOException ignored) {
            // closing anyway
        }
    }
}
