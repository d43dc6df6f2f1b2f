"""An HTTP/2 WebSocket client independent of wshub and of Node: python-h2 (Debian python3-h2).

Usage: h2ws.py PORT PATH TEXT. Opens an h2c connection with prior knowledge, sends an extended
CONNECT (RFC 8441 §4), sends TEXT as one masked text frame, prints the status, the echo and
the server's close code after sending a close frame.
"""
import os
import socket
import struct
import sys

import h2.config
import h2.connection
import h2.events
import h2.settings


def frame(opcode, payload):
    mask = os.urandom(4)
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    length = len(payload)
    if length < 126:
        header = struct.pack("!BB", 0x80 | opcode, 0x80 | length)
    else:
        header = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, length)
    return header + mask + masked


def parse(buffer):
    if len(buffer) < 2:
        return None
    opcode = buffer[0] & 0x0F
    length = buffer[1] & 0x7F
    offset = 2
    if length == 126:
        length = struct.unpack("!H", buffer[2:4])[0]
        offset = 4
    if len(buffer) < offset + length:
        return None
    return opcode, buffer[offset:offset + length], buffer[offset + length:]


def main():
    port, path, text = int(sys.argv[1]), sys.argv[2], sys.argv[3]
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    conn = h2.connection.H2Connection(config=h2.config.H2Configuration(client_side=True))
    conn.initiate_connection()
    sock.sendall(conn.data_to_send())
    stream_id = None
    data = b""
    status = None
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            break
        for event in conn.receive_data(chunk):
            if isinstance(event, h2.events.RemoteSettingsChanged) and stream_id is None:
                enabled = conn.remote_settings.get(h2.settings.SettingCodes.ENABLE_CONNECT_PROTOCOL)
                if enabled != 1:
                    print("no ENABLE_CONNECT_PROTOCOL")
                    return
                stream_id = conn.get_next_available_stream_id()
                conn.send_headers(stream_id, [
                    (":method", "CONNECT"), (":protocol", "websocket"), (":scheme", "http"),
                    (":path", path), (":authority", "127.0.0.1:%d" % port),
                    ("sec-websocket-version", "13"),
                ])
            elif isinstance(event, h2.events.ResponseReceived):
                status = dict(event.headers)[b":status"].decode()
                print("status", status)
                if status != "200":
                    return
                conn.send_data(stream_id, frame(0x1, text.encode()))
            elif isinstance(event, h2.events.DataReceived):
                conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
                data += event.data
                while True:
                    parsed = parse(data)
                    if parsed is None:
                        break
                    opcode, payload, data = parsed
                    if opcode == 0x1:
                        print("echo", payload.decode())
                        conn.send_data(stream_id, frame(0x8, struct.pack("!H", 1000)))
                    elif opcode == 0x8:
                        print("close", struct.unpack("!H", payload[:2])[0])
                        conn.end_stream(stream_id)
                        sock.sendall(conn.data_to_send())
                        return
        sock.sendall(conn.data_to_send())


main()
