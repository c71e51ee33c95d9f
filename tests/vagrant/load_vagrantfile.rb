# Loads ../../Vagrantfile with a recording stand-in for Vagrant's configuration API and prints
# what it defined as JSON (machines, hostnames, addresses, providers, provisioning scripts), so
# that tests/test_vagrant.py can check it without Vagrant or a hypervisor.
require "json"

class Recorder
  attr_reader :calls

  def initialize
    @calls = {}
  end

  def method_missing(name, *args, &block)
    key = name.to_s
    if key.end_with?("=")
      @calls[key.chomp("=")] = args.first
      return
    end
    child = (@calls[key] ||= Recorder.new)
    return child if args.empty? && block.nil?
    entry = { "args" => args }
    if block
      sub = Recorder.new
      block.call(sub)
      entry["block"] = sub.to_h
    end
    (@calls["#{key}()"] ||= []) << entry
    child
  end

  def respond_to_missing?(*)
    true
  end

  def to_h
    @calls.transform_values do |v|
      case v
      when Recorder then v.to_h
      when Array then v.map { |e| e.is_a?(Hash) ? e : e }
      else v
      end
    end
  end
end

module Vagrant
  def self.configure(version)
    raise "unexpected Vagrant API version #{version}" unless version == "2"
    config = Recorder.new
    yield config
    $defined = config.to_h
  end
end

load File.expand_path("../../Vagrantfile", __dir__)
puts JSON.pretty_generate($defined)
