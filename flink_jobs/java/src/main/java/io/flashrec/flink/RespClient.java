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
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.GeneralSecurityException;
import java.security.KeyStore;
import java.security.cert.Certificate;
import java.security.cert.CertificateFactory;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import javax.net.ssl.SSLContext;
import javax.net.ssl.SSLParameters;
import javax.net.ssl.SSLSocket;
import javax.net.ssl.TrustManagerFactory;

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
     * Connects to {@code redis[s]://[[user]:password@]host[:port][/db][?query]}; {@code
     * readTimeoutMs} must be longer than any BLOCK time used with this client.
     *
     * <p>{@code rediss://} is TLS, read the way redis-py reads the same URL, so one URL serves
     * both sides of the job: the server's certificate must chain to a trusted CA (the JVM's
     * trust store, or the PEM file named by {@code ssl_ca_certs}); its host name is checked only
     * with {@code ssl_check_hostname=true} (redis-py's default is off).
     */
    static RespClient connect(String redisUrl, int readTimeoutMs) throws IOException {
        URI uri = URI.create(redisUrl);
        boolean tls = "rediss".equals(uri.getScheme());
        if (!tls && !"redis".equals(uri.getScheme())) {
            throw new IllegalArgumentException(
                    "only redis:// and rediss:// URLs are supported, got " + uri.getScheme() + "://");
        }
        String host = uri.getHost() == null ? "127.0.0.1" : uri.getHost();
        int port = uri.getPort() < 0 ? 6379 : uri.getPort();
        Socket socket = new Socket();
        socket.setTcpNoDelay(true);
        socket.setKeepAlive(true);
        socket.connect(new InetSocketAddress(host, port), 10_000);
        socket.setSoTimeout(readTimeoutMs);
        if (tls) {
            socket = startTls(socket, host, port, query(uri));
        }
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

    private static Map<String, String> query(URI uri) {
        Map<String, String> out = new HashMap<>();
        String raw = uri.getRawQuery();
        if (raw == null || raw.isEmpty()) {
            return out;
        }
        for (String pair : raw.split("&")) {
            int eq = pair.indexOf('=');
            if (eq > 0) {
                out.put(decode(pair.substring(0, eq)), decode(pair.substring(eq + 1)));
            }
        }
        return out;
    }

    /** The TLS handshake over an already connected socket; a failed one closes it. */
    private static Socket startTls(Socket plain, String host, int port, Map<String, String> query)
            throws IOException {
        try {
            SSLContext context = SSLContext.getInstance("TLS");
            String caFile = query.get("ssl_ca_certs");
            if (caFile == null) {
                context.init(null, null, null); // the JVM's default trust store
            } else {
                context.init(null, trustOnly(Path.of(caFile)).getTrustManagers(), null);
            }
            SSLSocket tls = (SSLSocket) context.getSocketFactory().createSocket(plain, host, port, true);
            if (Boolean.parseBoolean(query.getOrDefault("ssl_check_hostname", "false"))) {
                SSLParameters params = tls.getSSLParameters();
                params.setEndpointIdentificationAlgorithm("HTTPS");
                tls.setSSLParameters(params);
            }
            tls.startHandshake();
            return tls;
        } catch (GeneralSecurityException | IOException | RuntimeException e) {
            plain.close();
            throw e instanceof IOException io ? io : new IOException("TLS to " + host + ":" + port, e);
        }
    }

    /** A trust manager factory that trusts exactly the certificates of one PEM file. */
    private static TrustManagerFactory trustOnly(Path pem)
            throws IOException, GeneralSecurityException {
        KeyStore store = KeyStore.getInstance(KeyStore.getDefaultType());
        store.load(null, null);
        try (InputStream in = Files.newInputStream(pem)) {
            int n = 0;
            for (Certificate cert : CertificateFactory.getInstance("X.509").generateCertificates(in)) {
                store.setCertificateEntry("ca-" + n++, cert);
            }
            if (n == 0) {
                throw new IOException("no certificate in ssl_ca_certs file " + pem);
            }
        }
        TrustManagerFactory factory =
                TrustManagerFactory.getInstance(TrustManagerFactory.getDefaultAlgorithm());
        factory.init(store);
        return factory;
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
