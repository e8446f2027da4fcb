-- Wireshark dissector for AMI link frames (docs/protocol.md) in the captures `ami demo
-- --capture` writes (docs/captures.md): pcap link type LINKTYPE_USER0 (147), a 12-byte
-- pseudo-header, then the frame with its FCS.
--
--   tshark -X lua_script:tools/wireshark/ami.lua -r air.pcap -V
--   wireshark -X lua_script:tools/wireshark/ami.lua air.pcap   (or copy to the plugins folder)
--
-- Every frame type of section 1.1 is decoded with its header fields; join payloads (3.1-3.3)
-- field by field, the certificate (2) included; DATA payloads are CCM ciphertext. The FCS
-- (CRC-16/KERMIT, little-endian) is checked; a bad one is an expert error (checksum group),
-- as is every rule of section 1 a frame breaks (malformed group). `ami.verdict` says what the
-- firmware would: ok, crc or malformed, in the firmware's order (size, CRC, fields).

local bit = bit32 or bit  -- Lua 5.2 has bit32; LuaJIT builds have bit

local ami = Proto("ami", "AMI link frame")
local ph = Proto("amiph", "AMI capture pseudo-header")

local TYPES = { [1] = "JOIN_REQUEST", [2] = "JOIN_RESPONSE", [3] = "JOIN_CONFIRM", [4] = "DATA" }
local KEY_IDS = { [0] = "session", [1] = "group" }
local ROLES = { [1] = "meter", [2] = "communications hub", [3] = "head end" }
local TAG_LENS = { [0] = 8, [1] = 12, [2] = 16 }
local JOIN_LENS = { [1] = 45, [2] = 101, [3] = 196 }
local MTU, HEADER_LEN, SECURED_HEADER_LEN, MIN_FRAME = 255, 18, 24, 20

local pf = {
  version = ProtoField.uint8("amiph.version", "Version", base.DEC),
  length = ProtoField.uint8("amiph.length", "Length", base.DEC),
  flags = ProtoField.uint8("amiph.flags", "Flags", base.HEX),
  down = ProtoField.bool("amiph.down", "Sent by the gateway", 8, nil, 0x01),
  injected = ProtoField.bool("amiph.injected", "Injected by the attacker", 8, nil, 0x02),
  modified = ProtoField.bool("amiph.modified", "Replaced by an interceptor", 8, nil, 0x04),
  jammed = ProtoField.bool("amiph.jammed", "Jammed after its airtime", 8, nil, 0x08),
  partition = ProtoField.uint8("amiph.partition", "Partition (demo worker)", base.DEC),
  node = ProtoField.eui64("amiph.node", "Node"),
}
ph.fields = { pf.version, pf.length, pf.flags, pf.down, pf.injected, pf.modified, pf.jammed,
              pf.partition, pf.node }

local f = {
  version = ProtoField.uint8("ami.version", "Version", base.DEC, nil, 0xF0),
  type = ProtoField.uint8("ami.type", "Frame type", base.DEC, TYPES, 0x0F),
  flags = ProtoField.uint8("ami.flags", "Flags", base.HEX),
  secured = ProtoField.bool("ami.flags.secured", "SECURED", 8, nil, 0x01),
  group = ProtoField.bool("ami.flags.group", "GROUP", 8, nil, 0x02),
  down = ProtoField.bool("ami.flags.down", "DOWN", 8, nil, 0x04),
  tag_code = ProtoField.uint8("ami.flags.tag_code", "Tag length code", base.DEC, nil, 0x18),
  reserved = ProtoField.uint8("ami.flags.reserved", "Reserved", base.HEX, nil, 0xE0),
  src = ProtoField.eui64("ami.src", "Source"),
  dst = ProtoField.eui64("ami.dst", "Destination"),
  key_id = ProtoField.uint8("ami.key_id", "Key id", base.DEC, KEY_IDS),
  key_gen = ProtoField.uint8("ami.key_gen", "Key generation", base.DEC),
  fcnt = ProtoField.uint32("ami.fcnt", "Frame counter", base.DEC),
  payload = ProtoField.bytes("ami.payload", "Payload"),
  ciphertext = ProtoField.bytes("ami.ciphertext", "Ciphertext (CCM)"),
  tag = ProtoField.bytes("ami.tag", "CCM tag"),
  fcs = ProtoField.uint16("ami.fcs", "FCS", base.HEX),
  fcs_good = ProtoField.bool("ami.fcs.good", "FCS good"),
  verdict = ProtoField.string("ami.verdict", "Verdict"),
  dev_nonce = ProtoField.uint32("ami.join.dev_nonce", "DevNonce", base.DEC),
  g_x = ProtoField.bytes("ami.join.g_x", "G_X (device ephemeral key)"),
  mic = ProtoField.bytes("ami.join.mic", "MIC"),
  join_nonce = ProtoField.uint32("ami.join.join_nonce", "JoinNonce", base.DEC),
  g_y = ProtoField.bytes("ami.join.g_y", "G_Y (head-end ephemeral key)"),
  sig_he = ProtoField.bytes("ami.join.sig_he", "Head-end signature"),
  cert = ProtoField.bytes("ami.cert", "Certificate"),
  cert_version = ProtoField.uint8("ami.cert.version", "Version", base.DEC),
  cert_role = ProtoField.uint8("ami.cert.role", "Role", base.DEC, ROLES),
  cert_eui = ProtoField.eui64("ami.cert.eui", "Subject"),
  cert_not_before = ProtoField.uint32("ami.cert.not_before", "Not before (Unix s)", base.DEC),
  cert_not_after = ProtoField.uint32("ami.cert.not_after", "Not after (Unix s)", base.DEC),
  cert_key = ProtoField.bytes("ami.cert.public_key", "Subject public key"),
  cert_issuer = ProtoField.uint8("ami.cert.issuer_id", "Issuer key id", base.DEC),
  cert_sig = ProtoField.bytes("ami.cert.signature", "CA signature"),
  sig_d = ProtoField.bytes("ami.join.sig_d", "Device signature"),
  mac = ProtoField.bytes("ami.join.mac", "Key confirmation MAC"),
}
ami.fields = {}
for _, field in pairs(f) do table.insert(ami.fields, field) end

local e_fcs = ProtoExpert.new("ami.fcs.bad", "Bad FCS", expert.group.CHECKSUM,
                              expert.severity.ERROR)
local e_malformed = ProtoExpert.new("ami.malformed", "Malformed AMI frame",
                                    expert.group.MALFORMED, expert.severity.ERROR)
ami.experts = { e_fcs, e_malformed }

-- CRC-16/KERMIT (reflected 0x1021, init 0), as section 1 defines the FCS.
local function crc16_kermit(tvb, offset, len)
  local crc = 0
  local data = tvb:bytes(offset, len)
  for i = 0, len - 1 do
    crc = bit.bxor(crc, data:get_index(i))
    for _ = 1, 8 do
      if bit.band(crc, 1) == 1 then
        crc = bit.bxor(bit.rshift(crc, 1), 0x8408)
      else
        crc = bit.rshift(crc, 1)
      end
    end
  end
  return crc
end

-- Why a type and flags byte break section 1.1, or nil (the firmware's _flag_error).
local function flag_error(ftype, flags)
  if TYPES[ftype] == nil then return "frame type" end
  if bit.band(flags, 0xE0) ~= 0 then return "reserved flag bits" end
  local code = bit.rshift(bit.band(flags, 0x18), 3)
  local secured = bit.band(flags, 0x01) ~= 0
  local group = bit.band(flags, 0x02) ~= 0
  local down = bit.band(flags, 0x04) ~= 0
  if ftype == 4 then
    if not secured then return "DATA frames are secured" end
    if code == 3 then return "tag length code 3" end
    if group and not down then return "group frames go down" end
    return nil
  end
  if secured then return "join frames are not secured" end
  if code ~= 0 then return "tag length code of an unsecured frame" end
  if group then return "join frames are unicast" end
  if down ~= (ftype == 2) then return "direction" end
  return nil
end

-- A flags byte and, under it, each of its bit fields.
local function add_bits(tree, byte_field, bit_fields, range)
  local sub = tree:add(byte_field, range)
  for _, bf in ipairs(bit_fields) do sub:add(bf, range) end
end

local function add_certificate(tree, tvb, off)
  local c = tree:add(f.cert, tvb:range(off, 116))
  c:add(f.cert_version, tvb:range(off, 1))
  c:add(f.cert_role, tvb:range(off + 1, 1))
  c:add(f.cert_eui, tvb:range(off + 2, 8))
  c:add(f.cert_not_before, tvb:range(off + 10, 4))
  c:add(f.cert_not_after, tvb:range(off + 14, 4))
  c:add(f.cert_key, tvb:range(off + 18, 33))
  c:add(f.cert_issuer, tvb:range(off + 51, 1))
  c:add(f.cert_sig, tvb:range(off + 52, 64))
end

local function add_join(tree, tvb, ftype, off)
  if ftype == 1 then
    tree:add(f.dev_nonce, tvb:range(off, 4))
    tree:add(f.g_x, tvb:range(off + 4, 33))
    tree:add(f.mic, tvb:range(off + 37, 8))
  elseif ftype == 2 then
    tree:add(f.join_nonce, tvb:range(off, 4))
    tree:add(f.g_y, tvb:range(off + 4, 33))
    tree:add(f.sig_he, tvb:range(off + 37, 64))
  else
    add_certificate(tree, tvb, off)
    tree:add(f.sig_d, tvb:range(off + 116, 64))
    tree:add(f.mac, tvb:range(off + 180, 16))
  end
end

-- The frame itself (FCS included); returns the verdict.
local function dissect_frame(tvb, pinfo, root)
  local n = tvb:len()
  local tree = root:add(ami, tvb())
  pinfo.cols.protocol = "AMI"
  local function malformed(why)
    tree:add_proto_expert_info(e_malformed, "Malformed: " .. why)
    return "malformed"
  end
  if n < MIN_FRAME or n > MTU then
    tree:add(f.payload, tvb())
    pinfo.cols.info = "invalid frame, length " .. n
    local v = malformed("length " .. n .. " outside [" .. MIN_FRAME .. ", " .. MTU .. "]")
    tree:add(f.verdict, v):set_generated()
    return v
  end
  local vt, flags = tvb:range(0, 1):uint(), tvb:range(1, 1):uint()
  local ftype = bit.band(vt, 0x0F)
  tree:add(f.version, tvb:range(0, 1))
  tree:add(f.type, tvb:range(0, 1))
  add_bits(tree, f.flags, { f.secured, f.group, f.down, f.tag_code, f.reserved },
           tvb:range(1, 1))
  tree:add(f.src, tvb:range(2, 8))
  tree:add(f.dst, tvb:range(10, 8))
  pinfo.cols.src = tvb:range(2, 8):bytes():tohex(true)
  pinfo.cols.dst = tvb:range(10, 8):bytes():tohex(true)

  local computed = crc16_kermit(tvb, 0, n - 2)
  local sent = tvb:range(n - 2, 2):le_uint()
  local verdict = "ok"
  local fcs_item = tree:add_le(f.fcs, tvb:range(n - 2, 2))
  tree:add(f.fcs_good, computed == sent):set_generated()
  if computed ~= sent then
    fcs_item:add_proto_expert_info(e_fcs, string.format("Bad FCS 0x%04x, computed 0x%04x",
                                                        sent, computed))
    verdict = "crc"
  end

  local name = TYPES[ftype] or ("type " .. ftype)
  local dir = bit.band(flags, 0x04) ~= 0 and "down" or "up"
  local info = name .. " " .. dir
  local err = nil
  if bit.rshift(vt, 4) ~= 1 then err = "version" else err = flag_error(ftype, flags) end
  local size = n - 2
  if err == nil then
    if bit.band(flags, 0x01) == 0 then
      if size - HEADER_LEN ~= JOIN_LENS[ftype] then
        err = "join payload length"
        tree:add(f.payload, tvb:range(HEADER_LEN, size - HEADER_LEN))
      else
        add_join(tree, tvb, ftype, HEADER_LEN)
      end
    else
      local tag_len = TAG_LENS[bit.rshift(bit.band(flags, 0x18), 3)]
      if size < SECURED_HEADER_LEN + 1 + tag_len then
        err = "too short for its tag"
      else
        local key_id = tvb:range(HEADER_LEN, 1):uint()
        tree:add(f.key_id, tvb:range(HEADER_LEN, 1))
        tree:add(f.key_gen, tvb:range(HEADER_LEN + 1, 1))
        tree:add(f.fcnt, tvb:range(HEADER_LEN + 2, 4))
        local clen = size - SECURED_HEADER_LEN - tag_len
        tree:add(f.ciphertext, tvb:range(SECURED_HEADER_LEN, clen))
        tree:add(f.tag, tvb:range(SECURED_HEADER_LEN + clen, tag_len))
        if key_id > 1 then
          err = "key id"
        elseif (bit.band(flags, 0x02) ~= 0) ~= (key_id == 1) then
          err = "group flag and key id disagree"
        end
        info = info .. string.format(" %s gen=%d fcnt=%u", KEY_IDS[key_id] or "key?",
                                     tvb:range(HEADER_LEN + 1, 1):uint(),
                                     tvb:range(HEADER_LEN + 2, 4):uint())
        if bit.band(flags, 0x02) ~= 0 then info = info .. " group" end
      end
    end
  end
  if err ~= nil then
    malformed(err)
    if verdict == "ok" then verdict = "malformed" end
  end
  if verdict ~= "ok" then info = info .. " [" .. verdict .. "]" end
  tree:add(f.verdict, verdict):set_generated()
  pinfo.cols.info = info
  return verdict
end

function ph.dissector(tvb, pinfo, root)
  if tvb:len() < 12 then return 0 end
  local hlen = tvb:range(1, 1):uint()
  local t = root:add(ph, tvb:range(0, hlen))
  t:add(pf.version, tvb:range(0, 1))
  t:add(pf.length, tvb:range(1, 1))
  add_bits(t, pf.flags, { pf.down, pf.injected, pf.modified, pf.jammed }, tvb:range(2, 1))
  t:add(pf.partition, tvb:range(3, 1))
  t:add(pf.node, tvb:range(4, 8))
  local flags = tvb:range(2, 1):uint()
  if hlen < tvb:len() then
    dissect_frame(tvb:range(hlen):tvb(), pinfo, root)
  else
    dissect_frame(ByteArray.new(""):tvb("empty frame"), pinfo, root)
  end
  if bit.band(flags, 0x02) ~= 0 then pinfo.cols.info = "[injected] " .. tostring(pinfo.cols.info) end
  if bit.band(flags, 0x08) ~= 0 then pinfo.cols.info = "[jammed] " .. tostring(pinfo.cols.info) end
  if bit.band(flags, 0x04) ~= 0 then pinfo.cols.info = "[modified] " .. tostring(pinfo.cols.info) end
  return tvb:len()
end

DissectorTable.get("wtap_encap"):add(wtap.USER0, ph)
