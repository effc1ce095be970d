// Test-rig launcher for Temporal's in-memory test server (io.temporal:temporal-test-server).
//
// Differs from io.temporal.testserver.TestServer#main in two ways the rig needs:
//  - it binds 127.0.0.1 only (TestServer binds every interface);
//  - on SIGTERM it stops at once (TestServer waits up to 5 s for open calls).
// Time skipping stays locked, so timers run in real time like a real server.
//
// Usage: java -cp 'libs/*:classes' TemporalLauncher <port>
import io.grpc.Server;
import io.grpc.netty.shaded.io.grpc.netty.NettyServerBuilder;
import io.temporal.internal.testservice.GRPCServerHelper;
import io.temporal.internal.testservice.TestServicesStarter;
import java.net.InetSocketAddress;
import java.util.concurrent.TimeUnit;

public final class TemporalLauncher {
  public static void main(String[] args) throws Exception {
    if (args.length != 1) {
      System.err.println("usage: TemporalLauncher <port>");
      System.exit(2);
    }
    int port = Integer.parseInt(args[0]);
    TestServicesStarter services = new TestServicesStarter(true, 0);
    NettyServerBuilder builder = NettyServerBuilder.forAddress(new InetSocketAddress("127.0.0.1", port));
    GRPCServerHelper.registerServicesAndHealthChecks(services.getServices(), builder);
    Server server = builder.build().start();
    Runtime.getRuntime().addShutdownHook(new Thread(() -> {
      server.shutdownNow();
      try {
        server.awaitTermination(1, TimeUnit.SECONDS);
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
      }
      services.close();
    }));
    System.err.println("TemporalLauncher: listening on 127.0.0.1:" + server.getPort());
    server.awaitTermination();
  }
}
